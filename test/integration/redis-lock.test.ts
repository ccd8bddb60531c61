import { afterAll, describe, expect, it } from 'vitest';
import { LockTimeoutError, withLocks } from '../../src/redis/lock.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const redis = testRedis();
const prefix = randomPrefix();

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('withLocks', () => {
  it('serialises holders of a shared key, whatever the order the keys are given in', async () => {
    const log: string[] = [];
    const critical = (name: string) => async () => {
      log.push(`${name}:in`);
      await new Promise((r) => setTimeout(r, 20));
      log.push(`${name}:out`);
    };
    await Promise.all([
      withLocks(redis, [`${prefix}a`, `${prefix}b`], critical('one')),
      withLocks(redis, [`${prefix}b`, `${prefix}a`], critical('two')),
      withLocks(redis, [`${prefix}b`], critical('three')),
    ]);
    for (let i = 0; i < log.length; i += 2) {
      expect(log[i]!.split(':')[0]).toBe(log[i + 1]!.split(':')[0]);
      expect(log[i]).toMatch(/:in$/);
    }
    expect(await redis.exists(`${prefix}a`, `${prefix}b`)).toBe(0);
  });

  it('releases on failure and gives up waiting with a LockTimeoutError', async () => {
    await expect(withLocks(redis, [`${prefix}c`], () => Promise.reject(new Error('inside')))).rejects.toThrow('inside');
    expect(await redis.exists(`${prefix}c`)).toBe(0);
    await redis.set(`${prefix}d`, 'someone-else', 'PX', 10_000);
    await expect(withLocks(redis, [`${prefix}d`], () => Promise.resolve(1), { waitMs: 50 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(await redis.get(`${prefix}d`)).toBe('someone-else');
  });
});
