/** Finds or starts the Redis to use and opens connections to it. */
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { AppError } from '../lib/errors.js';
import { parseUrl } from '../lib/parse.js';
import { redisAnswers, spawnRedisServer } from './redis-server.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export class RedisConfigError extends AppError {
  readonly code = 'REDIS_CONFIG';
}

/**
 * Finds the Redis to use. `REDIS_URL` when set (it must answer); otherwise the
 * local one on 127.0.0.1:6379; otherwise a `redis-server` from PATH, started
 * with its data (AOF on) under `.redis-data/`. Returns the URL.
 */
export async function resolveRedisUrl(config: Readonly<Config>, log: Logger): Promise<string> {
  const { url } = config.redis;
  if (url) {
    if (await redisAnswers(withCredentials(url, config), 3000)) return url;
    throw new RedisConfigError(`Redis at REDIS_URL (${safeHost(url)}) does not answer; check REDIS_URL, REDIS_USER and REDIS_PASSWORD`);
  }
  if (await redisAnswers(withCredentials(DEFAULT_REDIS_URL, config), 1000)) return DEFAULT_REDIS_URL;
  log.warn('no Redis on 127.0.0.1:6379 and REDIS_URL is unset: starting redis-server from PATH (data in .redis-data/, AOF on)');
  try {
    const spawned = await spawnRedisServer({ dataDir: '.redis-data', appendOnly: true, port: 6379, detached: true });
    log.info({ port: spawned.port }, 'started redis-server');
    return spawned.url;
  } catch (err) {
    throw new RedisConfigError('No Redis available: set REDIS_URL to a reachable Redis, or install redis-server', { cause: err });
  }
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
 * An ioredis client for `url` with the configured credentials. BullMQ needs
 * `maxRetriesPerRequest: null` on the connections it blocks on; callers that
 * want fail-fast commands pass their own value.
 */
export function createRedis(url: string, config: Readonly<Config>, overrides: RedisOptions = {}): Redis {
  const options: RedisOptions = {
    // Named after the prefix (BullMQ's duplicates inherit it), so `CLIENT LIST` tells one daemon's connections apart.
    connectionName: `ponte:${config.redis.prefix.replace(/[^\x21-\x7e]/g, '_')}`,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    ...overrides,
  };
  if (config.redis.username) options.username = config.redis.username;
  if (config.redis.password) options.password = config.redis.password;
  return new Redis(url, options);
}
