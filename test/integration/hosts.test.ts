/** Host heartbeats on one Redis prefix: who is alive, who still answers, and one process per HOST_ID. */
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostDirectory, HostIdInUseError, type HostReport } from '../../src/primary/hosts.js';
import { createLogger } from '../../src/observability/logger.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

let redis: Redis;
let keys: RedisKeys;
let prefix: string;
const log = createLogger({ level: 'silent' });
const report = (): HostReport => ({ pid: process.pid, version: 'test', startedAtMs: Date.now(), authStore: 'redis', workers: { total: 1, ready: 1 }, draining: false, instances: [] });

beforeEach(() => {
  redis = testRedis();
  prefix = randomPrefix();
  keys = new RedisKeys(prefix);
});

afterEach(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('HostDirectory', () => {
  it('lists live hosts, keeps a stopped one as down, and tells a host that stopped beating', async () => {
    const a = new HostDirectory({ redis, keys, hostId: 'a', ttlMs: 3000, report, log });
    const b = new HostDirectory({ redis, keys, hostId: 'b', ttlMs: 3000, report, log });
    await a.join();
    await b.join();
    expect((await a.live()).map((h) => h.hostId).sort()).toEqual(['a', 'b']);
    expect(await a.answering('b')).toBe(true);
    await b.leave();
    expect(await a.answering('b')).toBe(false);
    expect(await a.all()).toEqual([expect.objectContaining({ hostId: 'a', alive: true }), expect.objectContaining({ hostId: 'b', alive: false })]);
    // A heartbeat written 2.5 s ago and not since (the host froze): still listed, no longer answering.
    await redis.set(keys.host('c'), JSON.stringify({ hostId: 'c', nonce: 'x', seenAtMs: Date.now(), ...report() }), 'PX', 500);
    expect(await a.answering('c')).toBe(false);
    await a.leave();
  });

  it('a second process with the same HOST_ID waits one TTL, then refuses', async () => {
    const first = new HostDirectory({ redis, keys, hostId: 'same', ttlMs: 1000, report, log });
    await first.join();
    const second = new HostDirectory({ redis, keys, hostId: 'same', ttlMs: 1000, report, log });
    await expect(second.join()).rejects.toBeInstanceOf(HostIdInUseError);
    // Once the first is gone, the id is free again.
    await first.leave();
    await second.join();
    await second.leave();
  });
});
