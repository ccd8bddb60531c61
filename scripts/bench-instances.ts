/**
 * Instance figures for `npm run bench`: the whole daemon as `npm start`
 * runs it (built; primary and workers, sandbox driver) in a child process
 * with BENCH_INSTANCES linked instances restored from disk at start-up. Prints the time from start until
 * every instance is open, the workers' memory per idle instance and the
 * daemon's Redis connections (each against the same daemon with no
 * instance; connections are counted by their names in `CLIENT LIST`).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { InstanceRegistry } from '../src/primary/registry.js';
import { RedisKeys } from '../src/redis/keys.js';
import { freePort } from '../src/redis/redis-server.js';
import { FileAuthStore } from '../src/whatsapp/auth-store.js';
import { atMost, type Figures } from './bench-figures.js';
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';

const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 1000);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const STAGGER_MS = Number(process.env.BENCH_RESTORE_STAGGER_MS ?? 0);
const TOKEN = 'bench-admin-token-0123456789';

interface Status {
  workers: Array<{ id: number; memory: { rssBytes: number; heapUsedBytes: number } | null }>;
  instances: Array<{ instance: string; state?: string }>;
}

async function status(base: string): Promise<Status | undefined> {
  const res = await fetch(`${base}/global-status`, { headers: { authorization: `Bearer ${TOKEN}` } }).catch(() => undefined);
  return res?.ok ? ((await res.json()) as Status) : undefined;
}

async function daemon(env: Record<string, string>): Promise<{ proc: ChildProcess; base: string; startedAt: number }> {
  const port = await freePort();
  const startedAt = performance.now();
  // BENCH_CPU_PROF=<dir>: V8 CPU profiles of the primary and each worker, as for the other runs.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  // The built daemon, as `npm start` runs it (the TypeScript loader would add its compile time to the restore).
  const proc = spawn(process.execPath, [...profile, 'dist/main.js'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, SERVER_PORT: String(port), SERVER_HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { proc, base: `http://127.0.0.1:${port}`, startedAt };
}

async function stop(proc: ChildProcess): Promise<void> {
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function workerMemory(base: string): Promise<{ rss: number; heapUsed: number }> {
  // Let start-up garbage settle, then average a few reports.
  await sleep(5000);
  const samples: Array<{ rss: number; heapUsed: number }> = [];
  for (let i = 0; i < 5; i++) {
    const s = await status(base);
    if (s) samples.push(s.workers.reduce((acc, w) => ({ rss: acc.rss + (w.memory?.rssBytes ?? 0), heapUsed: acc.heapUsed + (w.memory?.heapUsedBytes ?? 0) }), { rss: 0, heapUsed: 0 }));
    await sleep(1000);
  }
  return { rss: samples.reduce((a, s) => a + s.rss, 0) / samples.length, heapUsed: samples.reduce((a, s) => a + s.heapUsed, 0) / samples.length };
}

/** The connections the daemon under `prefix` holds on Redis: Ponte names its own `ponte:<prefix>`, BullMQ its `<prefix>q:<queue>`. */
async function connections(redis: Redis, prefix: string): Promise<number> {
  const list = (await redis.call('CLIENT', 'LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=ponte:${prefix} `) || line.includes(` name=${prefix}q:`)).length;
}

export async function benchInstances(redisUrl: string, figures: Figures): Promise<void> {
  const double = await startChatwootDouble({ webhooksEnabled: false });
  const sessions = await mkdtemp(join(tmpdir(), 'ponte-bench-sessions-'));
  const prefix = `ponte-bench:${process.pid}:inst:`;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const env = {
    CHATWOOT_BASE_URL: double.url,
    CHATWOOT_API_ACCESS_TOKEN: double.token,
    WEBHOOK_SECRET: 'bench-webhook-secret-0123456789',
    ADMIN_TOKEN: TOKEN,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    MAX_WORKERS: String(WORKERS),
    WHATSAPP_DRIVER: 'sandbox',
    BAILEYS_AUTH_SESSIONS_PARENT_DIR: sessions,
    RESTORE_STAGGER_MS: String(STAGGER_MS),
    SERVER_LOG_LEVEL: 'error',
    CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'error',
  };
  try {
    execFileSync(process.execPath, ['scripts/build-if-needed.mjs'], { stdio: 'inherit' });
    // Baseline: the same daemon with no instance.
    const empty = await daemon(env);
    while (!(await status(empty.base))) await sleep(100);
    const base = await workerMemory(empty.base);
    const baseConnections = await connections(redis, prefix);
    await stop(empty.proc);

    // BENCH_INSTANCES linked instances, as a restart finds them.
    const account = double.addAccount();
    const registry = new InstanceRegistry(redis, new RedisKeys(prefix));
    const auth = new FileAuthStore(sessions);
    for (let i = 0; i < INSTANCES; i++) {
      const inbox = double.addInbox({ accountId: account.id });
      const { record } = await registry.upsert({ accountId: account.id, inboxId: inbox.id });
      const state = await auth.load(record.instanceKey);
      state.state.creds.me = { id: `55119${String(10_000_000 + i)}:1@s.whatsapp.net`, name: '~' };
      await state.saveCreds();
    }
    const full = await daemon(env);
    let open = 0;
    while (open < INSTANCES) {
      const s = await status(full.base);
      open = s?.instances.filter((x) => x.state === 'open').length ?? 0;
      // Each status lists every instance: asked five times a second, not more, so the asking does not slow the restore.
      if (open < INSTANCES) await sleep(200);
    }
    const restoreS = (performance.now() - full.startedAt) / 1000;
    const loaded = await workerMemory(full.base);
    const loadedConnections = await connections(redis, prefix);
    await stop(full.proc);

    const perRss = (loaded.rss - base.rss) / INSTANCES / 1024 / 1024;
    const perHeap = (loaded.heapUsed - base.heapUsed) / INSTANCES / 1024 / 1024;
    console.log(`instances: ${INSTANCES} sandbox instances over ${WORKERS} workers (restore stagger ${STAGGER_MS} ms)`);
    console.log(`  workers in total: ${(loaded.rss / 1024 / 1024).toFixed(0)} MiB RSS with instances, ${(base.rss / 1024 / 1024).toFixed(0)} MiB without`);
    const section = 'instances';
    figures.add({ section, name: `restore of ${INSTANCES} instances (spawn → all open)`, value: restoreS, unit: 's', digits: 1, target: atMost(10) });
    figures.add({ section, name: 'worker memory per idle instance (RSS)', value: perRss, unit: 'MiB', target: atMost(1) });
    figures.add({ section, name: '  the same, JS heap', value: perHeap, unit: 'MiB' });
    figures.add({ section, name: `Redis connections with ${INSTANCES} instances`, value: loadedConnections, unit: 'connections', target: atMost(baseConnections) });
    figures.add({ section, name: '  the same daemon with none', value: baseConnections, unit: 'connections' });
  } finally {
    await double.close();
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
