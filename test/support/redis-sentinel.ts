/**
 * A Redis group of the test's own behind one Sentinel: a master and a replica
 * (`redis-server` from PATH on free ports, no persistence) and a Sentinel
 * (`redis-server <conf> --sentinel`, its config in a temp folder, which
 * Sentinel rewrites). Never the shared test Redis.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, redisAnswers } from '../../src/redis/redis-server.js';
import { until } from './daemon.js';

/** One `redis-server` process (data node or Sentinel). */
export interface RedisProcess {
  port: number;
  proc: ChildProcess;
  /** What it was started with, to start it again after a crash. */
  args: readonly string[];
}

export interface SentinelGroup {
  name: string;
  sentinelPort: number;
  /** Master first, then the replica, as started; roles change with fail-overs. */
  nodes: readonly RedisProcess[];
  /** The daemon's Redis settings for this group (and no REDIS_URL). */
  env: { REDIS_SENTINELS: string; REDIS_SENTINEL_NAME: string; REDIS_SENTINEL_PASSWORD?: string };
  /** The port of the master Sentinel names now. */
  masterPort(): Promise<number>;
  /**
   * A planned switch to the replica, the way an operator does one without
   * losing writes: pause writes on the master, wait until the replica has
   * everything, `SENTINEL FAILOVER`, wait until Sentinel names the replica
   * and `resumeWhen(old master's port)` holds (the clients have left it),
   * then lift the pause. A client still on the old master then would write
   * to it until Sentinel demotes it (seconds later), and lose those writes;
   * with `requireReplicas(1)` the old master refuses them instead. Resolves
   * with the old and the new master's ports.
   */
  switchMaster(o: { resumeWhen(from: number): Promise<boolean> }): Promise<{ from: number; to: number }>;
  /**
   * Kills the data node on `port` (SIGKILL, a crash) and resolves once it
   * has exited; it comes back with `restart`, empty (no persistence).
   */
  crash(port: number): Promise<void>;
  /** Starts the data node on `port` again, as it was first started. */
  restart(port: number): Promise<void>;
  /** What the data node on `port` says it is: `master` or `slave`. */
  roleOf(port: number): Promise<string>;
  /** Until Sentinel has made the old master a replica of the new one and it has synced. */
  replicated(): Promise<void>;
  /**
   * `min-replicas-to-write` on both nodes (0: off, Redis' default): with 1,
   * a master that lost its replica refuses writes (NOREPLICAS), so an old
   * master accepts nothing that the switch would discard, and the new one
   * accepts nothing until the old one is its replica.
   */
  requireReplicas(count: number): Promise<void>;
  /** Stops every process the group started (SIGKILL after 5 s of SIGTERM) and waits for each; a `tearDown` close. */
  close(): Promise<void>;
}

export interface SentinelGroupOptions {
  /** A folder of the test's own: each server gets a subfolder. */
  dir: string;
  name: string;
  /** Sentinel's own password (`requirepass` in its config); the data nodes have none. */
  sentinelPassword?: string;
  /** More lines for Sentinel's config, e.g. another `sentinel monitor`. */
  sentinelConf?: string[];
}

/** Starts the master, then its replica, then the Sentinel, and resolves once Sentinel knows both. */
export async function startSentinelGroup(o: SentinelGroupOptions): Promise<SentinelGroup> {
  const started: RedisProcess[] = [];
  const stop = async () => {
    await Promise.all(started.map((p) => stopProcess(p.proc)));
  };
  try {
    const master = await startServer(join(o.dir, 'master'), [], started);
    const replica = await startServer(join(o.dir, 'replica'), ['--replicaof', '127.0.0.1', String(master.port)], started);
    const nodes = [master, replica];
    await until('the replica in sync', async () => /slave0:.*state=online/.test(await info(master.port, 'replication')));
    const sentinelDir = join(o.dir, 'sentinel');
    await mkdir(sentinelDir, { recursive: true });
    const sentinelPort = await freePort();
    const conf = join(sentinelDir, 'sentinel.conf');
    await writeFile(
      conf,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        'protected-mode no',
        `dir ${sentinelDir}`,
        `sentinel monitor ${o.name} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${o.name} 1000`,
        `sentinel failover-timeout ${o.name} 5000`,
        ...(o.sentinelPassword !== undefined ? [`requirepass ${o.sentinelPassword}`] : []),
        ...(o.sentinelConf ?? []),
        '',
      ].join('\n'),
    );
    const sentinel = await spawnServer([conf, '--sentinel'], sentinelPort, started, o.sentinelPassword);
    const ask = (...args: string[]) => command({ port: sentinel.port, password: o.sentinelPassword }, 'SENTINEL', ...args);
    const masterPort = async () => Number(((await ask('GET-MASTER-ADDR-BY-NAME', o.name)) as string[])[1]);
    // A replica Sentinel would promote: up, linked to its master, and known to Sentinel as such.
    const goodReplica = () =>
      until('Sentinel knowing a replica in sync', async () => {
        const replicas = ((await ask('REPLICAS', o.name)) as unknown[][]).map(fieldsOf);
        return replicas.some((r) => r.flags === 'slave' && r['master-link-status'] === 'ok') || undefined;
      }, undefined, 60_000);
    await goodReplica();
    return {
      name: o.name,
      sentinelPort,
      nodes,
      env: { REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`, REDIS_SENTINEL_NAME: o.name, ...(o.sentinelPassword !== undefined ? { REDIS_SENTINEL_PASSWORD: o.sentinelPassword } : {}) },
      masterPort,
      async switchMaster(so) {
        await goodReplica();
        const from = await masterPort();
        // Long enough for Sentinel to demote the old master (about ten seconds after the switch) if the
        // clients never leave it; lifted as soon as they have.
        await command(from, 'CLIENT', 'PAUSE', '30000', 'WRITE');
        try {
          await until('the replica holding every write', async () => {
            const text = await info(from, 'replication');
            const offset = Number(/master_repl_offset:(\d+)/.exec(text)?.[1]);
            const acked = Number(/slave0:.*offset=(\d+)/.exec(text)?.[1]);
            return acked >= offset;
          });
          await ask('FAILOVER', o.name);
          const to = await until('Sentinel naming the new master', async () => {
            const port = await masterPort();
            return port !== from ? port : undefined;
          });
          await until('the clients off the old master', () => so.resumeWhen(from), undefined, 60_000);
          return { from, to };
        } finally {
          await command(from, 'CLIENT', 'UNPAUSE');
        }
      },
      async replicated() {
        const port = await masterPort();
        await until('the old master made a replica and in sync', async () => /slave0:.*state=online/.test(await info(port, 'replication')), undefined, 60_000);
      },
      async crash(port) {
        const node = nodes.find((n) => n.port === port)!;
        const exited = once(node.proc, 'exit');
        node.proc.kill('SIGKILL');
        await exited;
      },
      async restart(port) {
        const node = nodes.find((n) => n.port === port)!;
        node.proc = (await spawnServer(node.args, port, started)).proc;
      },
      async roleOf(port) {
        return String(((await command(port, 'ROLE')) as unknown[])[0]);
      },
      async requireReplicas(count) {
        for (const node of [master, replica]) {
          await command(node.port, 'CONFIG', 'SET', 'min-replicas-to-write', String(count));
          await command(node.port, 'CONFIG', 'SET', 'min-replicas-max-lag', '10');
        }
      },
      close: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A data node on a free port with its folder, no persistence. */
async function startServer(dir: string, extra: string[], started: RedisProcess[]): Promise<RedisProcess> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  return spawnServer(['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...extra], port, started);
}

async function spawnServer(args: readonly string[], port: number, started: RedisProcess[], password?: string): Promise<RedisProcess> {
  const proc = spawn('redis-server', args, { stdio: 'ignore' });
  const p = { port, proc, args };
  started.push(p);
  await until(`redis-server on ${port}`, async () => {
    if (proc.exitCode !== null) throw new Error(`redis-server on ${port} exited with code ${proc.exitCode}`);
    return redisAnswers(`redis://${password !== undefined ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}`, 200);
  }, undefined, 10_000);
  return p;
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  const force = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(force);
}

/** One command on a short-lived connection. */
async function command(to: number | { port: number; password: string | undefined }, ...args: string[]): Promise<unknown> {
  const { port, password } = typeof to === 'number' ? { port: to, password: undefined } : to;
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: () => null, ...(password !== undefined ? { password } : {}) });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const [name, ...rest] = args as [string, ...string[]];
    return await client.call(name, ...rest);
  } finally {
    client.disconnect();
  }
}

async function info(port: number, section: string): Promise<string> {
  const text = await command(port, 'INFO', section);
  return typeof text === 'string' ? text : String(text);
}

/** Sentinel's flat `[name, value, name, value, …]` replies as an object. */
function fieldsOf(reply: unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}
