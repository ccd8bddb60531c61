/**
 * The whole daemon as a child process for the benchmarks: start (sandbox
 * driver by default, or Baileys against a test server), call, link a sandbox
 * number, stop or kill, and clean up or keep its state for a restart.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../src/redis/redis-server.js';
import type { ChatwootDouble } from '../test/support/chatwoot-double/index.js';

export const BENCH_TOKEN = 'bench-admin-token-0123456789';
export const BENCH_SECRET = 'bench-webhook-secret-0123456789';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Chatwoot's webhook signature headers for `body`, signed with the inbox's secret. */
export function signatureHeaders(secret: string, body: string): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  return { 'content-type': 'application/json', 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}` };
}

/** Deletes every key under `prefix` (SCAN, never FLUSHALL). */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/**
 * CPU seconds the daemon's primary and its workers (all of them, summed) have used, as of a status report after
 * a quiet 1.2 s (workers report every second).
 */
export async function daemonCpu(d: Pick<BenchDaemon, 'call'>): Promise<{ primary: number; workers: number }> {
  await sleep(1200);
  const s = (await d.call('GET', '/global-status')).json as { primary: { cpuS: number }; workers: Array<{ cpuS: number | null }> };
  return { primary: s.primary.cpuS, workers: s.workers.reduce((sum, w) => sum + (w.cpuS ?? 0), 0) };
}

export interface BenchDaemon {
  proc: ChildProcess;
  base: string;
  prefix: string;
  /** The auth state folder (`BAILEYS_AUTH_SESSIONS_PARENT_DIR`). */
  sessions: string;
  /** `performance.now()` just before the spawn. */
  startedAtMs: number;
  /** A JSON call with the admin token. */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }>;
  /** Creates the instance of `<account>-<inbox>`, scans its QR as `phone` and waits until it is open; returns its key. */
  linkSandbox(accountId: number, inboxId: number, phone: string): Promise<string>;
  /**
   * SIGTERM, then its keys and session folder are removed (kept with `{ keep: true }`, for a restart on them).
   * A daemon on a `sharedPrefix` leaves the prefix's keys to the caller and removes only its session folder.
   */
  stop(o?: { keep?: boolean }): Promise<void>;
  /** Sends `signal` (default SIGKILL) to the daemon, to its whole process group when `detached`, as a crash would; resolves once the primary is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface BenchDaemonOptions {
  redisUrl: string;
  double: ChatwootDouble;
  /** Names the prefix and the session folder. */
  label: string;
  /** More environment, over the defaults (not `SERVER_PORT`/`SERVER_HOST`). */
  env?: Record<string, string>;
  /** `WHATSAPP_DRIVER`; default `sandbox`. */
  driver?: 'sandbox' | 'baileys';
  /** Node flags before `src/main.ts`; default `--import tsx`. */
  nodeArgs?: readonly string[];
  /** The session folder and prefix of a daemon stopped with `{ keep: true }`: this one restores its instances. */
  reuse?: { sessions: string; prefix: string };
  /** Where the daemon's stdout (its log) goes; default nowhere. Its stderr is always shown. */
  stdout?: 'ignore' | 'inherit';
  /** A Redis prefix several daemons share (hosts of one service, each with its own HOST_ID); its keys are the caller's to delete. */
  sharedPrefix?: string;
  /** Its own process group, so `kill` ends the primary and its workers at once. */
  detached?: boolean;
}

/** Starts the daemon against `double` on `redisUrl`, under a prefix of its own (or `reuse`'s), and waits until it is ready. */
export async function startBenchDaemon(o: BenchDaemonOptions): Promise<BenchDaemon> {
  const sessions = o.reuse?.sessions ?? (await mkdtemp(join(tmpdir(), `ponte-bench-${o.label}-`)));
  const prefix = o.reuse?.prefix ?? o.sharedPrefix ?? `ponte-bench:${process.pid}:${o.label}:`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const startedAtMs = performance.now();
  // BENCH_CPU_PROF=<dir>: a V8 CPU profile of the primary and of each worker (cluster workers inherit execArgv).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const proc = spawn(process.execPath, [...profile, ...(o.nodeArgs ?? ['--import', 'tsx']), 'src/main.ts'], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      CHATWOOT_BASE_URL: o.double.url,
      CHATWOOT_API_ACCESS_TOKEN: o.double.token,
      WEBHOOK_SECRET: BENCH_SECRET,
      ADMIN_TOKEN: BENCH_TOKEN,
      REDIS_URL: o.redisUrl,
      REDIS_PREFIX: prefix,
      MAX_WORKERS: '1',
      WHATSAPP_DRIVER: o.driver ?? 'sandbox',
      BAILEYS_AUTH_SESSIONS_PARENT_DIR: sessions,
      SANDBOX_QR_INTERVAL_MS: '60000',
      SERVER_LOG_LEVEL: 'error',
      CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'error',
      // Throughput figures measure Ponte, not the safe-sending limiter (bench-limiter.ts sets its own).
      SENDS_PER_MINUTE: '10000',
      NEW_CHAT_SENDS_PER_HOUR: '100000',
      SEND_SPACING_MIN_MS: '0',
      SEND_SPACING_MAX_MS: '0',
      ...o.env,
      SERVER_PORT: String(port),
      SERVER_HOST: '127.0.0.1',
    },
    stdio: ['ignore', o.stdout ?? 'ignore', 'inherit'],
    detached: o.detached ?? false,
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  const call: BenchDaemon['call'] = async (method, path, body) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${BENCH_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };
  const stop: BenchDaemon['stop'] = async (so) => {
    if (!gone()) {
      proc.kill('SIGTERM');
      await exited;
    }
    if (so?.keep) return;
    if (o.sharedPrefix === undefined) {
      const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
      await deleteKeys(redis, prefix);
      await redis.quit();
    }
    await rm(sessions, { recursive: true, force: true });
  };
  const kill: BenchDaemon['kill'] = async (signal = 'SIGKILL') => {
    if (gone() || proc.pid === undefined) return;
    try {
      if (o.detached) process.kill(-proc.pid, signal);
      else proc.kill(signal);
    } catch (err) {
      // Already gone between the check and the signal.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    await exited;
  };
  while (!(await fetch(`${base}/readyz`).then((r) => r.ok, () => false))) {
    if (gone()) {
      // What it left is the caller's to clean when it reused a stopped daemon's state.
      if (!o.reuse) await stop();
      throw new Error(`the daemon exited with ${proc.exitCode ?? proc.signalCode} before it was ready`);
    }
    await sleep(100);
  }
  const stateOf = async (key: string) => ((await call('GET', '/global-status')).json.instances as Array<{ instance: string; state?: string }> | undefined)?.find((i) => i.instance === key)?.state;
  return {
    proc,
    base,
    prefix,
    sessions,
    startedAtMs,
    call,
    linkSandbox: async (accountId, inboxId, phone) => {
      const key = `${accountId}-${inboxId}`;
      await call('POST', '/admin/instances', { inbox: inboxId, account: accountId });
      while ((await call('GET', `/admin/instances/${key}/qr?format=text`)).status !== 200) await sleep(100);
      await call('POST', `/sandbox/instances/${key}/scan`, { phone });
      while ((await stateOf(key)) !== 'open') await sleep(100);
      return key;
    },
    stop,
    kill,
  };
}
