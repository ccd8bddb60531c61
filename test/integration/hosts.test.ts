/** Host heartbeats on one Redis prefix: who is alive, who still answers, and one process per HOST_ID. */
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostDirectory, HostIdInUseError, type HostReport } from '../../src/primary/hosts.js';
import type { InstanceStatus, InstanceView } from '../../src/model/instance.js';
import { createLogger } from '../../src/observability/logger.js';
import { buildGlobalStatus } from '../../src/primary/status.js';
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

describe('/global-status of a host that stopped beating', () => {
  it('shows it down and its numbers host_down within seconds, before its heartbeat expires', async () => {
    const self = new HostDirectory({ redis, keys, hostId: 'a', ttlMs: 60_000, report, log });
    await self.join();
    const status = (instanceKey: string): InstanceStatus => ({
      instanceKey,
      state: 'open',
      qrCount: 0,
      inbound: { received: 0, relayed: 0, parked: 0, retried: 0, pending: 0 },
      outbound: { sent: 0, failed: 0, pending: 0 },
    });
    // Host b beat once, 10 s ago, and not since (killed or frozen): its heartbeat has 50 of its 60 s left.
    const frozen = new HostDirectory({ redis, keys, hostId: 'b', ttlMs: 60_000, report: () => ({ ...report(), instances: [{ instanceKey: '1-2', slot: 0, status: status('1-2') }] }), log });
    await frozen.beat();
    await redis.pexpire(keys.host('b'), 50_000);
    const record = (instanceKey: string, host: string): InstanceView => ({ instanceKey, accountId: 1, inboxId: Number(instanceKey.split('-')[1]), desired: 'running', createdAtMs: 0, updatedAtMs: 0, host, slot: 0, status: status(instanceKey) });
    const control = { list: () => Promise.resolve([record('1-1', 'a'), record('1-2', 'b')]) };
    const supervisor = { count: 1, all: () => [] };

    const s = await buildGlobalStatus(control, supervisor, self, 'test');

    expect(s.hosts.map((h) => [h.id, h.alive, h.instances, h.open])).toEqual([
      ['a', true, 1, 1],
      ['b', false, 1, 0],
    ]);
    expect(s.instances.map((i) => [i.instance, i.state, i.host])).toEqual([
      ['1-1', 'open', 'a'],
      ['1-2', 'host_down', 'b'],
    ]);
    expect(s.instances[1]!.lastError).toMatch(/^host b has not answered since \d{4}-\d\d-\d\dT.*another host opens the number when its lease expires$/);
    expect(s.totals.open).toBe(1);
    await self.leave();
  });
});
