/**
 * `npm run instance -- migrate-auth <file|redis>` on the production driver
 * against the loopback WhatsApp server: a number linked with its auth state
 * in files moves into Redis (sealed with `AUTH_STORE_KEY`) and back while
 * Ponte is stopped, and after each move the daemon opens it without a QR and
 * relays both ways with the Signal sessions it moved. While a daemon runs the
 * number, the command leaves it where it is and says why.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { api, type Daemon, instanceStatus, stopDaemon, until } from '../support/daemon.js';
import { SECRET, tearDown, tempDir } from '../support/e2e.js';
import { linkByQr, loginsOf, realDriverEnv, startRealDriverDaemon, textOf } from '../support/real-whatsapp.js';
import { randomPrefix, testRedis } from '../support/redis.js';
import { quietLibsignal, type SimulatedPeer, startWhatsAppServer, type WhatsAppServer } from '../support/whatsapp-server/index.js';

const PHONE = '5511933330202';

describe('migrate-auth: one linked number moved between the file and the Redis store', () => {
  let server: WhatsAppServer;
  let double: ChatwootDouble;
  const prefix = randomPrefix();
  const sealKey = randomBytes(32).toString('hex');
  let sessions: string;
  const daemons: Daemon[] = [];
  let accountId: number;
  let inboxId: number;
  let key: string;
  let conversationId: number;
  let ana: SimulatedPeer;
  let loudLibsignal: (() => void) | undefined;

  const envFor = (authStore: 'file' | 'redis') => realDriverEnv({ double, sessions, prefix }, { AUTH_STORE: authStore, AUTH_STORE_KEY: sealKey, BAILEYS_RECONNECT_DELAY_MS: '250' });
  const start = async (authStore: 'file' | 'redis'): Promise<Daemon> => {
    const d = await startRealDriverDaemon(server, envFor(authStore));
    daemons.push(d);
    double.setInboxWebhook(inboxId, `${d.base}/webhook/chatwoot/${key}?token=${SECRET}`);
    return d;
  };
  /** Runs the command as an operator would, with the configuration of the store it moves to; resolves with its exit code and output. */
  const migrate = async (to: 'file' | 'redis'): Promise<{ code: number; stdout: string }> => {
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/instance.ts', 'migrate-auth', to], { cwd: process.cwd(), env: envFor(to) });
      return { code: 0, stdout };
    } catch (err) {
      const e = err as { code?: number; stdout?: string };
      if (typeof e.code !== 'number') throw err;
      return { code: e.code, stdout: e.stdout ?? '' };
    }
  };
  const stateOf = (d: Daemon) => instanceStatus(d, key);
  const allMessages = (): CwMessageRecord[] => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id));
  const inRedis = async (): Promise<{ creds: string | null; keys: Record<string, string> }> => {
    const redis = testRedis();
    try {
      return { creds: await redis.get(`${prefix}auth:${key}:creds`), keys: await redis.hgetall(`${prefix}auth:${key}:keys`) };
    } finally {
      await redis.quit();
    }
  };
  /** Both ways on `d`: the customer's next message reaches the same conversation, the agent's answer reaches the phone. */
  const bothWays = async (d: Daemon, text: string, answer: string) => {
    const sent = await ana.sendText(server.account(PHONE)!, text);
    const relayed = await until(`"${text}" in Chatwoot`, () => Promise.resolve(allMessages().find((m) => m.source_id === `WAID:${sent.id}`)), d);
    expect(relayed).toMatchObject({ content: text, conversation_id: conversationId });
    double.createAgentMessage(accountId, conversationId, { content: answer });
    await until(`"${answer}" on the phone`, () => Promise.resolve(ana.messages.items.find((m) => textOf(m.message) === answer)), d);
  };
  /** Opens on `d` from the moved state: open, no QR shown, no new registration, one more login. */
  const opensWithoutQr = async (d: Daemon, registrations: number, logins: number) => {
    await until('open from the moved state', async () => (await stateOf(d))?.state === 'open', d);
    expect(await stateOf(d)).toMatchObject({ state: 'open', qrAttempts: 0 });
    expect(server.connections.filter((c) => c.isRegistration).length).toBe(registrations);
    expect(loginsOf(server, PHONE).length).toBeGreaterThan(logins);
  };

  beforeAll(async () => {
    loudLibsignal = quietLibsignal();
    server = await startWhatsAppServer();
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    inboxId = double.addInbox({ accountId, name: 'WhatsApp Loja' }).id;
    key = `${accountId}-${inboxId}`;
    sessions = await tempDir('ponte-e2e-migrate-');
  }, 60_000);

  afterAll(async () => {
    await tearDown({ daemons, close: [server, double], prefix, dir: sessions });
    loudLibsignal?.();
  }, 60_000);

  afterEach(() => {
    expect(server.errors).toEqual([]);
    expect(double.violations).toEqual([]);
  });

  it('file → redis with Ponte stopped: opens without a QR and relays both ways; refused while a daemon runs it', async () => {
    const first = await start('file');
    expect((await api(first, 'POST', '/admin/instances', { inbox: inboxId, account: accountId })).status).toBe(201);
    await linkByQr(first, server, key, PHONE);
    await until('open with the file store', async () => (await stateOf(first))?.state === 'open', first);
    ana = server.addPeer({ phone: '5511987650202', pushName: 'Ana' });
    const hello = await ana.sendText(server.account(PHONE)!, 'Oi, o pedido 812 já saiu?');
    conversationId = (await until('the first message in Chatwoot', () => Promise.resolve(allMessages().find((m) => m.source_id === `WAID:${hello.id}`)), first)).conversation_id;
    double.createAgentMessage(accountId, conversationId, { content: 'Saiu hoje cedo.' });
    await until('the first reply on the phone', () => Promise.resolve(ana.messages.items.find((m) => textOf(m.message) === 'Saiu hoje cedo.')), first);

    // Running: the command leaves the number in its files and says why, exit 1.
    const busy = await migrate('redis');
    expect(busy.code).toBe(1);
    expect(busy.stdout).toContain(`${key}: left in the file store: a daemon is running it`);
    expect((await inRedis()).creds).toBeNull();

    expect(await stopDaemon(first)).toBe(0);
    expect(await readdir(sessions)).toContain(key);
    const registrations = server.connections.filter((c) => c.isRegistration).length;
    const logins = loginsOf(server, PHONE).length;

    const moved = await migrate('redis');
    expect(moved).toMatchObject({ code: 0 });
    expect(moved.stdout).toContain(`${key}: moved to the redis store`);
    expect(moved.stdout).toContain('1 instance(s) moved, 0 left. Set AUTH_STORE=redis before starting Ponte.');
    // The files are gone; Redis holds the state, sealed, Signal sessions included.
    expect(await readdir(sessions)).not.toContain(key);
    const stored = await inRedis();
    expect(stored.creds).toMatch(/^s1:/);
    expect(Object.keys(stored.keys).some((f) => f.startsWith('session/'))).toBe(true);
    expect(Object.values(stored.keys).every((v) => v.startsWith('s1:'))).toBe(true);

    const second = await start('redis');
    await opensWithoutQr(second, registrations, logins);
    await bothWays(second, 'E o 813?', 'Sai amanhã.');
  }, 180_000);

  it('redis → file: the same number back in its files, open without a QR, both ways', async () => {
    for (const d of daemons) expect(await stopDaemon(d)).toBe(0);
    const registrations = server.connections.filter((c) => c.isRegistration).length;
    const logins = loginsOf(server, PHONE).length;

    const back = await migrate('file');
    expect(back).toMatchObject({ code: 0 });
    expect(back.stdout).toContain(`${key}: moved to the file store`);
    expect(await inRedis()).toEqual({ creds: null, keys: {} });
    expect(await readdir(sessions)).toContain(key);
    // A second run finds nothing left to move.
    expect((await migrate('file')).stdout).toContain('0 instance(s) moved, 0 left.');

    const third = await start('file');
    await opensWithoutQr(third, registrations, logins);
    await bothWays(third, 'Obrigada!', 'Por nada.');
  }, 180_000);
});
