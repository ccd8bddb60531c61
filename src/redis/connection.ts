/** Finds or starts the Redis to use (one server, or the master a Sentinel group names) and opens connections to it. */
import { Redis, type RedisOptions } from 'ioredis';
import type { Config, SentinelAddress } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { AppError, coerceError } from '../lib/errors.js';
import { parseUrl } from '../lib/parse.js';
import { redisAnswers, spawnRedisServer } from './redis-server.js';
import { WatchedSentinelConnector } from './sentinel-connector.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** How long the start-up check waits for one Sentinel or server to answer. */
const CHECK_TIMEOUT_MS = 3000;

export class RedisConfigError extends AppError {
  readonly code = 'REDIS_CONFIG';
}

/**
 * Where Ponte's Redis is: one server at a URL, or the master of a Sentinel
 * group, which ioredis asks the Sentinels for at every (re)connection, so a
 * fail-over moves each connection to the new master. Credentials are not
 * part of it: they stay in the configuration.
 */
export type RedisTarget = { kind: 'url'; url: string } | { kind: 'sentinel'; sentinels: readonly SentinelAddress[]; name: string };

/** The target the configuration names (REDIS_SENTINELS or REDIS_URL), if any. */
export function configuredRedisTarget(config: Readonly<Config>): RedisTarget | undefined {
  const { sentinel, url } = config.redis;
  if (sentinel) return { kind: 'sentinel', sentinels: sentinel.addresses, name: sentinel.name };
  return url ? { kind: 'url', url } : undefined;
}

/** The variables that make a worker's configuration name `target`: the primary forks its workers with them. */
export function redisTargetEnv(target: RedisTarget): Record<string, string> {
  if (target.kind === 'url') return { REDIS_URL: target.url };
  return { REDIS_SENTINELS: target.sentinels.map(formatAddress).join(','), REDIS_SENTINEL_NAME: target.name };
}

/** Where `target` is, for logs and errors: no credentials. */
export function describeRedisTarget(target: RedisTarget): string {
  return target.kind === 'url' ? safeHost(target.url) : `master "${target.name}" through Sentinel ${target.sentinels.map(formatAddress).join(', ')}`;
}

/**
 * Finds the Redis to use. With `REDIS_SENTINELS`, the master Sentinel names
 * (it must answer as a master); with `REDIS_URL`, that server (it must
 * answer); otherwise the local one on 127.0.0.1:6379; otherwise a
 * `redis-server` from PATH, started with its data (AOF on) under
 * `.redis-data/`. Throws a {@link RedisConfigError} that says what to check.
 */
export async function resolveRedisTarget(config: Readonly<Config>, log: Logger): Promise<RedisTarget> {
  const configured = configuredRedisTarget(config);
  if (configured?.kind === 'sentinel') {
    await checkSentinelTarget(configured, config, log);
    return configured;
  }
  if (configured) {
    if (await redisAnswers(withCredentials(configured.url, config), CHECK_TIMEOUT_MS)) return configured;
    throw new RedisConfigError(`Redis at REDIS_URL (${safeHost(configured.url)}) does not answer; check REDIS_URL, REDIS_USER and REDIS_PASSWORD`);
  }
  if (await redisAnswers(withCredentials(DEFAULT_REDIS_URL, config), 1000)) return { kind: 'url', url: DEFAULT_REDIS_URL };
  log.warn('no Redis on 127.0.0.1:6379 and neither REDIS_URL nor REDIS_SENTINELS is set: starting redis-server from PATH (data in .redis-data/, AOF on)');
  try {
    const spawned = await spawnRedisServer({ dataDir: '.redis-data', appendOnly: true, port: 6379, detached: true });
    log.info({ port: spawned.port }, 'started redis-server');
    return { kind: 'url', url: spawned.url };
  } catch (err) {
    throw new RedisConfigError('No Redis available: set REDIS_URL (or REDIS_SENTINELS) to a reachable Redis, or install redis-server', { cause: err });
  }
}

/** Asks the Sentinels, in order, for the master's address, then checks that the master answers as one. */
async function checkSentinelTarget(target: Extract<RedisTarget, { kind: 'sentinel' }>, config: Readonly<Config>, log: Logger): Promise<void> {
  const problems: string[] = [];
  let master: SentinelAddress | undefined;
  for (const sentinel of target.sentinels) {
    const answer = await askSentinelForMaster(sentinel, target.name, config.redis.sentinel?.password);
    if (typeof answer === 'string') problems.push(`${formatAddress(sentinel)} ${answer}`);
    else {
      master = answer;
      break;
    }
  }
  if (!master) {
    throw new RedisConfigError(`No Sentinel in REDIS_SENTINELS names a master for "${target.name}" (${problems.join('; ')}); check REDIS_SENTINELS, REDIS_SENTINEL_NAME and REDIS_SENTINEL_PASSWORD`);
  }
  const role = await roleOf(master, config);
  if (role !== 'master') {
    throw new RedisConfigError(
      `Sentinel names ${formatAddress(master)} as the master of "${target.name}", but it ${role}; check REDIS_USER and REDIS_PASSWORD, and that this host reaches that address (Sentinel hands out the address it knows the master by)`,
    );
  }
  log.info({ sentinels: target.sentinels.map(formatAddress), name: target.name, master: formatAddress(master) }, 'Redis master found through Sentinel');
}

/** The master's address as `sentinel` knows it, or why it gave none. */
function askSentinelForMaster(sentinel: SentinelAddress, name: string, password: string | undefined): Promise<SentinelAddress | string> {
  return probe(sentinel, password === undefined ? {} : { password }, async (client) => {
    const reply = await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
    if (!Array.isArray(reply) || reply.length < 2) return `knows no master named "${name}"`;
    return { host: String(reply[0]), port: Number(reply[1]) };
  });
}

/** REDIS_USER and REDIS_PASSWORD as client options (the data nodes' credentials, not the Sentinels'). */
function dataCredentials(config: Readonly<Config>): Pick<RedisOptions, 'username' | 'password'> {
  return { ...(config.redis.username ? { username: config.redis.username } : {}), ...(config.redis.password ? { password: config.redis.password } : {}) };
}

/** `'master'`, or what the server at `address` is instead ("answers as a replica", "did not answer (…)"). */
function roleOf(address: SentinelAddress, config: Readonly<Config>): Promise<string> {
  return probe(address, dataCredentials(config), async (client) => {
    const reply = await client.call('ROLE');
    const role = Array.isArray(reply) ? String(reply[0]) : '';
    return role === 'master' ? role : `answers as a ${role === 'slave' ? 'replica' : role || 'server of unknown role'}`;
  });
}

/**
 * Runs `ask` on a one-off client that fails fast (no retries, no offline
 * queue, every command bounded) and answers what went wrong instead of
 * throwing: "refused (WRONGPASS …)" when Redis answered with an error,
 * "did not answer (…)" otherwise. Redis' and the socket's texts name no
 * password.
 */
async function probe<T>(address: SentinelAddress, options: RedisOptions, ask: (client: Redis) => Promise<T>): Promise<T | string> {
  const client = new Redis({
    host: address.host,
    port: address.port,
    lazyConnect: true,
    connectTimeout: CHECK_TIMEOUT_MS,
    commandTimeout: CHECK_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    retryStrategy: () => null,
    ...options,
  });
  // The first error ioredis emitted names the cause; what connect() rejects with may only say the connection closed.
  let first: Error | undefined;
  client.on('error', (err: Error) => {
    first ??= err;
  });
  try {
    await client.connect();
    return await ask(client);
  } catch (err) {
    const thrown = coerceError(err);
    const cause = thrown.name === 'ReplyError' ? thrown : (first ?? thrown);
    return cause.name === 'ReplyError' ? `refused (${cause.message})` : `did not answer (${cause.message})`;
  } finally {
    client.disconnect();
  }
}

function formatAddress(a: SentinelAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function withCredentials(url: string, config: Readonly<Config>): string {
  const u = new URL(url);
  if (config.redis.username && !u.username) u.username = config.redis.username;
  if (config.redis.password && !u.password) u.password = config.redis.password;
  return u.toString();
}

function safeHost(url: string): string {
  const u = parseUrl(url);
  return u ? `${u.protocol}//${u.host}` : 'unparseable';
}

/**
 * A command refused by a master that became a replica did nothing: reconnect
 * (Sentinel names the new master) and send it again. Matches the reply itself
 * (`READONLY …`) and the same error raised inside a Lua script (`… -READONLY …`).
 */
export function reconnectOnReadOnly(err: Error): boolean | 1 | 2 {
  return /(^|-)READONLY /.test(err.message) ? 2 : false;
}

/**
 * An ioredis client for `target` with the configured credentials. BullMQ
 * needs `maxRetriesPerRequest: null` on the connections it blocks on;
 * callers that want fail-fast commands pass their own value. BullMQ's
 * `duplicate()`s of a client keep its target and options.
 */
export function createRedis(target: RedisTarget, config: Readonly<Config>, overrides: RedisOptions = {}): Redis {
  const options: RedisOptions = {
    // Named after the prefix (BullMQ's duplicates inherit it), so `CLIENT LIST` tells one daemon's connections apart.
    connectionName: `ponte:${config.redis.prefix.replace(/[^\x21-\x7e]/g, '_')}`,
    maxRetriesPerRequest: null,
    // In Sentinel mode the ready check is also where ioredis refuses a server that is not a master.
    enableReadyCheck: true,
    ...(target.kind === 'sentinel'
      ? {
          sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
          name: target.name,
          ...(config.redis.sentinel?.password !== undefined ? { sentinelPassword: config.redis.sentinel.password } : {}),
          // Drop the connection on Sentinel's +switch-master instead of writing on to the old master until
          // Sentinel demotes it (seconds later): what it accepted meanwhile is discarded when it resyncs.
          failoverDetector: true,
          Connector: WatchedSentinelConnector,
          reconnectOnError: reconnectOnReadOnly,
        }
      : {}),
    ...overrides,
    ...dataCredentials(config),
  };
  return target.kind === 'url' ? new Redis(target.url, options) : new Redis(options);
}
