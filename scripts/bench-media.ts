/**
 * Media figures for `npm run bench`: BENCH_MEDIA images of BENCH_MEDIA_KB
 * each arrive from WhatsApp (sandbox driver) and are downloaded and uploaded
 * to the Chatwoot double as attachments. Prints images per second, MiB per
 * second, and the peak RSS of the worker while relaying them (sampled from
 * /global-status).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../src/redis/redis-server.js';
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';

const COUNT = Number(process.env.BENCH_MEDIA ?? 200);
const KB = Number(process.env.BENCH_MEDIA_KB ?? 350);
const TOKEN = 'bench-admin-token-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function call(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

export async function benchMedia(redisUrl: string): Promise<void> {
  const double = await startChatwootDouble({ webhooksEnabled: false });
  const sessions = await mkdtemp(join(tmpdir(), 'ponte-bench-media-'));
  const prefix = `ponte-bench:${process.pid}:media:`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  try {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id, name: 'bench media' });
    const key = `${account.id}-${inbox.id}`;
    proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        CHATWOOT_BASE_URL: double.url,
        CHATWOOT_API_ACCESS_TOKEN: double.token,
        WEBHOOK_SECRET: 'bench-webhook-secret-0123456789',
        ADMIN_TOKEN: TOKEN,
        REDIS_URL: redisUrl,
        REDIS_PREFIX: prefix,
        MAX_WORKERS: '1',
        WHATSAPP_DRIVER: 'sandbox',
        BAILEYS_AUTH_SESSIONS_PARENT_DIR: sessions,
        SANDBOX_QR_INTERVAL_MS: '60000',
        SERVER_PORT: String(port),
        SERVER_HOST: '127.0.0.1',
        SERVER_LOG_LEVEL: 'error',
        CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    while (!(await fetch(`${base}/readyz`).then((r) => r.ok, () => false))) await sleep(100);
    await call(base, 'POST', '/admin/instances', { inbox: inbox.id, account: account.id });
    while ((await call(base, 'GET', `/admin/instances/${key}/qr?format=text`)).status !== 200) await sleep(100);
    await call(base, 'POST', `/sandbox/instances/${key}/scan`, { phone: '5511900000002' });
    while (((await call(base, 'GET', '/global-status')).json.instances as Array<{ state?: string }>)[0]?.state !== 'open') await sleep(100);

    // JPEG-framed random bytes of a realistic photo size.
    const images = Array.from({ length: COUNT }, () => Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), randomBytes(KB * 1024 - 6), Buffer.from('ffd9', 'hex')]).toString('base64'));
    let peakRss = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await call(base, 'GET', '/global-status');
        for (const w of (s.json.workers as Array<{ memory: { rssBytes: number } | null }> | undefined) ?? []) peakRss = Math.max(peakRss, w.memory?.rssBytes ?? 0);
        await sleep(250);
      }
    })();
    const start = performance.now();
    for (let i = 0; i < COUNT; i++) {
      await call(base, 'POST', `/sandbox/instances/${key}/messages`, { from: `55119${String(30_000_000 + (i % 20))}`, type: 'image', media: images[i], mimetype: 'image/jpeg', caption: `foto ${i}` });
    }
    const attachments = () => double.conversations(account.id).reduce((n, c) => n + double.messages(account.id, c.id).filter((m) => m.attachments.length > 0).length, 0);
    while (attachments() < COUNT) await sleep(50);
    const seconds = (performance.now() - start) / 1000;
    sampling = false;
    await sampler;
    console.log(`media: ${COUNT} images of ${KB} KiB over 20 chats, one worker`);
    console.log(`  relayed as attachments: ${(COUNT / seconds).toFixed(1)} images/s, ${((COUNT * KB) / 1024 / seconds).toFixed(1)} MiB/s`);
    console.log(`  worker peak RSS while relaying: ${(peakRss / 1048576).toFixed(0)} MiB`);
  } finally {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc!.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    await double.close();
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    await redis.quit();
    await rm(sessions, { recursive: true, force: true });
  }
}
