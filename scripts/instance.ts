/**
 * `npm run instance -- <command>`: the operator's terminal for instances,
 * over the running daemon's admin API (so the first number can be linked
 * before any command inbox exists; DESIGN.md, Decisions 8).
 *
 *   npm run instance -- create <inbox> <account>   create (or restart) and show the QR here
 *   npm run instance -- new <name> <account>       create a Chatwoot API inbox named <name> pointed at Ponte, then the same
 *   npm run instance -- qr <account>-<inbox>       show the current QR
 *   npm run instance -- list
 *   npm run instance -- start|stop|logout <account>-<inbox>
 *   npm run instance -- replay <account>-<inbox>   send its parked messages to Chatwoot again
 *   npm run instance -- migrate-auth <file|redis> [--replace]  move every instance's auth state into that store (Ponte stopped; no new QR)
 *
 * The daemon's address and token come from .env (SERVER_PORT, ADMIN_TOKEN or
 * STATUS_TOKEN); PONTE_URL overrides the address. `migrate-auth` works on
 * the stores themselves (BAILEYS_AUTH_SESSIONS_PARENT_DIR, REDIS_URL or
 * REDIS_SENTINELS, REDIS_PREFIX, AUTH_STORE_KEY), not through the daemon.
 */
import QRCode from 'qrcode';
import { ConfigError, loadConfig, loadDotenv } from '../src/config/load.js';
import { configuredRedisTarget, createRedis, DEFAULT_REDIS_URL } from '../src/redis/connection.js';
import { RedisKeys } from '../src/redis/keys.js';
import { createAuthStore } from '../src/whatsapp/auth-stores.js';
import { migrateAuth } from '../src/whatsapp/migrate-auth.js';

function usage(): never {
  process.stderr.write('usage: npm run instance -- create <inbox> <account> | new <name> <account> | qr <instance> | list | start <instance> | stop <instance> | logout <instance> | replay <instance> | migrate-auth <file|redis>\n');
  process.exit(2);
}

loadDotenv();
let base: string;
let token: string | undefined;
try {
  const config = loadConfig();
  base = process.env.PONTE_URL ?? `http://127.0.0.1:${config.server.port}`;
  token = config.auth.adminToken;
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  base = process.env.PONTE_URL ?? 'http://127.0.0.1:3000';
  token = process.env.ADMIN_TOKEN;
}

async function call(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch {
    process.stderr.write(`Ponte does not answer at ${base}: is it running (npm start)? Set PONTE_URL if it listens elsewhere.\n`);
    process.exit(1);
  }
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    const reason = typeof json.message === 'string' ? json.message : typeof json.error === 'string' ? json.error : '';
    process.stderr.write(`${method} ${path}: ${res.status} ${reason}\n`);
    process.exit(1);
  }
  return json;
}

async function showQr(instance: string): Promise<void> {
  process.stdout.write(`Waiting for the QR of ${instance}…\n`);
  let shown = '';
  for (;;) {
    const status = (await call('GET', '/admin/instances')).instances as Array<{ instanceKey: string; status?: { state?: string; phone?: string } }>;
    const mine = status.find((i) => i.instanceKey === instance);
    if (mine?.status?.state === 'open') {
      process.stdout.write(`Linked: +${mine.status.phone ?? '?'} is connected.\n`);
      return;
    }
    if (mine?.status?.state === 'passkey_required') {
      process.stdout.write(
        `WhatsApp asked this number for a passkey before linking a new device, which Ponte cannot answer yet; the link stopped.\n` +
          `On the phone, look at Settings → Account → Passkeys; try again later, or link a number that does not ask for one. Then run: npm run instance -- start ${instance}\n`,
      );
      process.exit(1);
    }
    if (mine?.status?.state === 'qr_expired' || mine?.status?.state === 'halted') {
      process.stdout.write(`The instance stopped (${mine.status.state}). Run: npm run instance -- start ${instance}\n`);
      process.exit(1);
    }
    const res = await fetch(`${base}/admin/instances/${instance}/qr?format=text`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (res.ok) {
      const { qr } = (await res.json()) as { qr: string };
      if (qr !== shown) {
        shown = qr;
        process.stdout.write(`${await QRCode.toString(qr, { type: 'terminal', small: true })}\nScan it in WhatsApp: Settings → Linked devices → Link a device.\n`);
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case 'create': {
    const [inbox, account] = args;
    if (!inbox || !account) usage();
    const r = await call('POST', '/admin/instances', { inbox: Number(inbox), account: Number(account) });
    process.stdout.write(`Instance ${String(r.instance)} created. Point the Chatwoot inbox webhook at ${String(r.webhookUrl)}\n`);
    await showQr(String(r.instance));
    break;
  }
  case 'new': {
    // The name may be several words: every argument but the last, which is the account.
    const account = args.at(-1);
    const name = args.slice(0, -1).join(' ').trim();
    if (!name || !account || !/^\d+$/.test(account)) usage();
    const r = await call('POST', '/admin/instances', { name, account: Number(account) });
    const inbox = r.inbox as { id: number; name: string; secretKnown: boolean };
    process.stdout.write(`Inbox "${inbox.name}" (id ${inbox.id}) created in account ${account}, its webhook pointed at Ponte${inbox.secretKnown ? ' (signed webhooks verified)' : ''}. Instance ${String(r.instance)}.\n`);
    await showQr(String(r.instance));
    break;
  }
  case 'qr':
    if (!args[0]) usage();
    await showQr(args[0]);
    break;
  case 'list': {
    const r = await call('GET', '/admin/instances');
    for (const i of r.instances as Array<{ instanceKey: string; desired: string; slot?: number; status?: { state?: string; phone?: string } }>) {
      process.stdout.write(`${i.instanceKey.padEnd(12)} ${i.desired.padEnd(8)} worker ${String(i.slot ?? '-').padEnd(3)} ${i.status?.state ?? '-'} ${i.status?.phone ? `+${i.status.phone}` : ''}\n`);
    }
    break;
  }
  case 'start':
  case 'stop':
  case 'logout':
    if (!args[0]) usage();
    await call('POST', `/admin/instances/${args[0]}/${command}`);
    process.stdout.write(`${command}: ${args[0]}\n`);
    break;
  case 'replay': {
    if (!args[0]) usage();
    const { replayed } = (await call('POST', `/admin/instances/${args[0]}/replay`)) as { replayed: number };
    process.stdout.write(`replay: ${args[0]}: ${replayed} parked message(s) sent again\n`);
    break;
  }
  case 'migrate-auth': {
    const to = args[0];
    if (to !== 'file' && to !== 'redis') usage();
    let config: ReturnType<typeof loadConfig>;
    try {
      config = loadConfig();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    const redis = createRedis(configuredRedisTarget(config) ?? { kind: 'url', url: DEFAULT_REDIS_URL }, config, { lazyConnect: false, maxRetriesPerRequest: 3 });
    try {
      const keys = new RedisKeys(config.redis.prefix);
      const from = to === 'redis' ? 'file' : 'redis';
      const result = await migrateAuth({ from: createAuthStore(config, redis, keys, from), to: createAuthStore(config, redis, keys, to), redis, keys, replace: args.includes('--replace') });
      for (const i of result.moved) process.stdout.write(`${i}: moved to the ${to} store\n`);
      for (const s of result.skipped) process.stdout.write(`${s.instanceKey}: left in the ${from} store: ${s.reason}\n`);
      process.stdout.write(`${result.moved.length} instance(s) moved, ${result.skipped.length} left.${result.moved.length > 0 ? ` Set AUTH_STORE=${to} before starting Ponte.` : ""}\n`);
      if (result.skipped.some((s) => s.reason !== 'no credentials')) process.exitCode = 1;
    } finally {
      await redis.quit();
    }
    break;
  }
  default:
    usage();
}
