/**
 * Runs the whole daemon (`src/main.ts`, primary and workers) as a child
 * process for black-box tests, and talks to it over HTTP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { GlobalStatus } from '../../src/model/global-status.js';
import { freePort } from '../../src/redis/redis-server.js';

export const ADMIN = 'e2e-admin-token-0123456789';

export interface Daemon {
  proc: ChildProcess;
  base: string;
  port: number;
  output: string[];
  exited: Promise<number | null>;
}

/**
 * Polls `fn` every 100 ms until it returns something (not undefined or
 * false). Fails after `deadlineMs` (default 60 s), or at once when `daemon`
 * exited, naming what it waited for and the last error `fn` threw.
 */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, daemon?: Daemon, deadlineMs = 60_000): Promise<T> {
  const giveUpAt = Date.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    const v = await fn().catch((err: unknown) => {
      lastError = err;
      return undefined;
    });
    if (v !== undefined && v !== false) return v;
    const tail = daemon ? `\n${daemon.output.join('').slice(-3000)}` : '';
    if (daemon && daemon.proc.exitCode !== null) throw new Error(`daemon exited while waiting for ${what}${tail}`);
    if (Date.now() > giveUpAt) throw new Error(`still waiting for ${what} after ${deadlineMs} ms${lastError ? ` (last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)})` : ''}${tail}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface DaemonOptions {
  /** Node flags before `src/main.ts` (default `--import tsx`). */
  nodeArgs?: string[];
  /** Its own process group, so `killDaemon` can kill the primary and its workers at once. */
  detached?: boolean;
  /** Listen on this port (a restart on the same URL); a free one by default. */
  port?: number;
  /** Resolve once `/readyz` answers 200 (default), or already once `/healthz` answers (a daemon expected not to be ready). */
  until?: 'ready' | 'listening';
}

export async function startDaemon(env: Record<string, string>, o: DaemonOptions = {}): Promise<Daemon> {
  const port = o.port ?? (await freePort());
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? ['--import', 'tsx']), 'src/main.ts'], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, SERVER_PORT: String(port), SERVER_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: o.detached ?? false,
  });
  const output: string[] = [];
  proc.stdout.on('data', (c: Buffer) => output.push(c.toString()));
  proc.stderr.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const daemon = { proc, base: `http://127.0.0.1:${port}`, port, output, exited };
  if (o.until === 'listening') await until('the HTTP listener', async () => (await fetch(`${daemon.base}/healthz`)).ok, daemon);
  else await until('readiness', async () => (await fetch(`${daemon.base}/readyz`)).ok, daemon);
  return daemon;
}

/** SIGTERM, as pm2 or an operator stops it; resolves with the exit code once every worker is gone. */
export async function stopDaemon(d: Daemon): Promise<number | null> {
  if (hasExited(d.proc)) return d.proc.exitCode;
  d.proc.kill('SIGTERM');
  return d.exited;
}

function hasExited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/** Kills a daemon started `detached` with its workers (the whole process group), as a crash or `kill -9` would. */
export async function killDaemon(d: Daemon, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (d.proc.pid === undefined) return;
  try {
    process.kill(-d.proc.pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
  await d.exited;
}

export async function api(d: Daemon, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${d.base}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** One instance as `GET /global-status` shows it. */
export type StatusInstance = GlobalStatus['instances'][number];

export async function instanceStatus(d: Daemon, key: string): Promise<StatusInstance | undefined> {
  const { json } = await api(d, 'GET', '/global-status');
  return (json.instances as StatusInstance[]).find((i) => i.instance === key);
}

