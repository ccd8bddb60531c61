/**
 * Runs the whole daemon (`src/main.ts`, primary and workers) as a child
 * process for black-box tests, and talks to it over HTTP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { freePort } from '../../src/redis/redis-server.js';

export const ADMIN = 'e2e-admin-token-0123456789';

export interface Daemon {
  proc: ChildProcess;
  base: string;
  output: string[];
  exited: Promise<number | null>;
}

export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, daemon?: Daemon): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (daemon && daemon.proc.exitCode !== null) throw new Error(`daemon exited while waiting for ${what}:\n${daemon.output.join('').slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startDaemon(env: Record<string, string>): Promise<Daemon> {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, SERVER_PORT: String(port), SERVER_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  proc.stdout.on('data', (c: Buffer) => output.push(c.toString()));
  proc.stderr.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const daemon = { proc, base: `http://127.0.0.1:${port}`, output, exited };
  await until('readiness', async () => (await fetch(`${daemon.base}/readyz`)).ok, daemon);
  return daemon;
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

export interface StatusInstance {
  instance: string;
  worker: number | null;
  state?: string;
}

export async function instanceStatus(d: Daemon, key: string): Promise<StatusInstance | undefined> {
  const { json } = await api(d, 'GET', '/global-status');
  return (json.instances as StatusInstance[]).find((i) => i.instance === key);
}

