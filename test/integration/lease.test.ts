import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { epochOf, InstanceLease } from '../../src/worker/lease.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

let redis: Redis;
let keys: RedisKeys;
let prefix: string;

beforeEach(() => {
  redis = testRedis();
  prefix = randomPrefix();
  keys = new RedisKeys(prefix);
});

afterEach(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('InstanceLease', () => {
  it('one holder at a time; the same holder may re-acquire; release frees it', async () => {
    const a = new InstanceLease(redis, keys, '1-2', 'host-a', () => undefined);
    const b = new InstanceLease(redis, keys, '1-2', 'host-b', () => undefined);
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    expect(await a.acquire()).toBe(true);
    expect(await InstanceLease.holderOf(redis, keys, '1-2')).toBe('host-a');
    await a.release();
    expect(await b.acquire()).toBe(true);
    expect(await a.verify()).toBe(false);
    expect(await b.verify()).toBe(true);
    await b.release();
  });

  it('release by a holder that lost the lease leaves the new holder alone', async () => {
    const a = new InstanceLease(redis, keys, '3-4', 'host-a', () => undefined);
    await a.acquire();
    await redis.set(keys.lease('3-4'), 'host-b');
    await a.release();
    expect(await InstanceLease.holderOf(redis, keys, '3-4')).toBe('host-b');
  });

  it('a lease taken over is noticed at the next renewal', async () => {
    let lost = false;
    const a = new InstanceLease(redis, keys, '5-6', 'host-a', () => (lost = true), { ttlMs: 3000, renewEveryMs: 20 });
    await a.acquire();
    await redis.set(keys.lease('5-6'), 'host-b');
    while (!lost) await new Promise((r) => setTimeout(r, 10));
    expect(a.isHeld).toBe(false);
    await a.release();
  });

  it('a session of the same owner takes over at once; another owner waits; each releases only its own', async () => {
    const old = new InstanceLease(redis, keys, '9-1', 'host:10:0:aaaa', () => undefined, { ownerPrefix: 'host:10:0:' });
    const next = new InstanceLease(redis, keys, '9-1', 'host:10:0:bbbb', () => undefined, { ownerPrefix: 'host:10:0:' });
    const stranger = new InstanceLease(redis, keys, '9-1', 'host:20:0:cccc', () => undefined, { ownerPrefix: 'host:20:0:' });
    expect(await old.acquire()).toBe(true);
    expect(await stranger.acquire()).toBe(false);
    // The replacing session (a restart, or a respawned worker in the slot) takes the lease at once.
    expect(await next.acquire()).toBe(true);
    // The old session's slow stop releases nothing of the new one's.
    await old.release();
    expect(await InstanceLease.holderOf(redis, keys, '9-1')).toBe('host:10:0:bbbb');
    expect(await next.verify()).toBe(true);
    await next.release();
    expect(await stranger.acquire()).toBe(true);
    await stranger.release();
  });

  it('a lease Redis lost (a restart, an outage past its TTL) is taken again at the next renewal, not given up', async () => {
    let lost = false;
    const a = new InstanceLease(redis, keys, '9-2', 'host-a', () => (lost = true), { ttlMs: 3000, renewEveryMs: 20 });
    await a.acquire();
    await redis.del(keys.lease('9-2'));
    while ((await InstanceLease.holderOf(redis, keys, '9-2')) !== 'host-a') await new Promise((r) => setTimeout(r, 10));
    expect(lost).toBe(false);
    expect(a.isHeld).toBe(true);
    await a.release();
  });

  it('renewal keeps a lease alive past its TTL', async () => {
    const a = new InstanceLease(redis, keys, '7-8', 'host-a', () => undefined, { ttlMs: 1500, renewEveryMs: 50 });
    await a.acquire();
    // Wait for several renewals by watching the TTL being pushed back up.
    let renewals = 0;
    let last = await redis.pttl(keys.lease('7-8'));
    while (renewals < 5) {
      await new Promise((r) => setTimeout(r, 20));
      const ttl = await redis.pttl(keys.lease('7-8'));
      if (ttl > last) renewals++;
      last = ttl;
    }
    expect(await a.verify()).toBe(true);
    await a.release();
  });

  it('each acquisition carries a larger epoch, and the fence follows the value in Redis', async () => {
    const a = new InstanceLease(redis, keys, '2-1', 'host-a', () => undefined);
    const b = new InstanceLease(redis, keys, '2-1', 'host-b', () => undefined);
    expect(await a.acquire()).toBe(true);
    const first = a.epoch;
    expect(first).toBeGreaterThan(0);
    // Acquiring again while holding it keeps the epoch.
    expect(await a.acquire()).toBe(true);
    expect(a.epoch).toBe(first);
    const fence = a.fence;
    expect(await redis.get(fence.leaseKey)).toBe(fence.holder);
    await a.release();
    expect(await b.acquire()).toBe(true);
    expect(b.epoch).toBeGreaterThan(first);
    await b.release();
    expect(await a.acquire()).toBe(true);
    expect(a.epoch).toBeGreaterThan(b.epoch);
    // The fence read earlier names the current value: the auth store checks what Redis holds now.
    expect(fence.holder).toBe(`host-a#${a.epoch}`);
    expect(epochOf(fence.holder)).toBe(a.epoch);
    await a.release();
  });

  it('a holder paused past its TTL does not take back a lease someone acquired meanwhile, even if it is free again', async () => {
    let lost = false;
    // Its renewals wait on a clock this test moves: nothing renews while it "sleeps".
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const a = new InstanceLease(redis, keys, '2-2', 'host-a', () => (lost = true), { ttlMs: 3000, renewEveryMs: 1000 });
      expect(await a.acquire()).toBe(true);
      // While a sleeps its lease expires; b runs the number and stops.
      await redis.del(keys.lease('2-2'));
      const b = new InstanceLease(redis, keys, '2-2', 'host-b', () => undefined);
      expect(await b.acquire()).toBe(true);
      await b.release();
      // a wakes: its renewal finds the lease free, but acquired since, so a gives up.
      vi.advanceTimersByTime(1000);
      // Until the renewal has answered: it either gave up or took the lease back.
      while (!lost && (await InstanceLease.holderOf(redis, keys, '2-2')) === null) await new Promise((r) => setTimeout(r, 10));
      expect(lost).toBe(true);
      expect(a.isHeld).toBe(false);
      expect(await InstanceLease.holderOf(redis, keys, '2-2')).toBeNull();
      await a.release();
    } finally {
      vi.useRealTimers();
    }
  });

  it('is trusted only while Redis confirmed it within two thirds of the TTL', async () => {
    const a = new InstanceLease(redis, keys, '2-3', 'host-a', () => undefined, { ttlMs: 3000, renewEveryMs: 60_000 });
    expect(a.trusted).toBe(false);
    expect(await a.acquire()).toBe(true);
    expect(a.trusted).toBe(true);
    // The process was frozen for 2.1 s: the lease may be gone, nothing is sent on it until a renewal answers.
    const now = performance.now();
    const clock = vi.spyOn(performance, 'now').mockReturnValue(now + 2100);
    try {
      expect(a.trusted).toBe(false);
    } finally {
      clock.mockRestore();
    }
    expect(a.trusted).toBe(true);
    await a.release();
    expect(a.trusted).toBe(false);
  });
});
