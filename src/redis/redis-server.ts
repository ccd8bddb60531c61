/** Probes for a Redis and starts a local `redis-server` from PATH when there is none. */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import { AppError } from '../lib/errors.js';

/** No `redis-server` on PATH, or it did not come up. */
export class RedisUnavailableError extends AppError {
  readonly code = 'REDIS_UNAVAILABLE';
}

/** True when a Redis answers PING at `url` within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  // A probe: any failure to connect or answer means no Redis there.
  const answered = await client
    .connect()
    .then(() => client.ping())
    .then(
      (reply) => reply === 'PONG',
      () => false,
    );
  client.disconnect();
  return answered;
}

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolvePort(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

export interface SpawnedRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Sends `signal` (SIGKILL: a crash) and resolves once the server has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface SpawnRedisOptions {
  /** Data folder; AOF is written there when `appendOnly` is true. */
  dataDir: string;
  appendOnly: boolean;
  port?: number;
  /** Keep running after this process exits (the daemon's own Redis); tests use false. */
  detached?: boolean;
  /** AOF fsync policy: `everysec` (Redis' default) or `always` (nothing acknowledged is lost in a crash). */
  appendFsync?: 'always' | 'everysec';
}

/**
 * Starts `redis-server` from PATH on 127.0.0.1 and waits until it answers.
 * Fails with a {@link RedisUnavailableError} that says what to install when
 * there is none.
 */
export async function spawnRedisServer(options: SpawnRedisOptions): Promise<SpawnedRedis> {
  const port = options.port ?? (await freePort());
  const dir = resolve(options.dataDir);
  mkdirSync(dir, { recursive: true });
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', options.appendOnly ? 'yes' : 'no',
    '--appendfsync', options.appendFsync ?? 'everysec',
    '--protected-mode', 'yes',
  ];
  const child = spawn('redis-server', args, {
    stdio: 'ignore',
    detached: options.detached ?? false,
  });
  const spawnFailed = new Promise<never>((_, reject) => {
    child.once('error', (err) =>
      reject(
        new RedisUnavailableError(
          'No Redis answers and `redis-server` could not be started from PATH (install it: apt-get install redis-server), or set REDIS_URL',
          { cause: err },
        ),
      ),
    );
    child.once('exit', (code) => reject(new RedisUnavailableError(`redis-server exited with code ${code} before answering`)));
  });
  if (options.detached) child.unref();
  const url = `redis://127.0.0.1:${port}`;
  const ready = (async () => {
    for (let i = 0; i < 100; i++) {
      if (await redisAnswers(url, 200)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new RedisUnavailableError(`redis-server on port ${port} did not answer within 5 s`);
  })();
  await Promise.race([ready, spawnFailed]);
  spawnFailed.catch(() => undefined);
  const kill = (signal: NodeJS.Signals) =>
    new Promise<void>((resolveStop) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolveStop();
      child.once('exit', () => resolveStop());
      child.kill(signal);
    });
  return { url, port, stop: () => kill('SIGTERM'), kill };
}
