import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';

/** The URL of the test Redis (see `redis-global-setup.ts`). */
export function testRedisUrl(): string {
  return inject('redisUrl');
}

/** A fresh key prefix, unique to the caller: `ponte-test:<random>:`. */
export function randomPrefix(): string {
  return `ponte-test:${randomBytes(6).toString('hex')}:`;
}

/** A plain client on the test Redis. Close it with `quit()`. */
export function testRedis(): Redis {
  return new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
}

/** Deletes every key under `prefix` (SCAN, never FLUSHALL). */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}
