/**
 * Placement among hosts on one Redis prefix, with the hosts' instances kept
 * in memory: shares, free numbers, hand-over one at a time, a host that
 * stops, and a claim that expired while its host kept the number.
 */
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/redis/keys.js';
import type { HostBeat } from '../../src/primary/hosts.js';
import { Placement, parseOwner, quotasFor } from '../../src/primary/placement.js';
import { createLogger } from '../../src/observability/logger.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

let redis: Redis;
let keys: RedisKeys;
let prefix: string;
const log = createLogger({ level: 'silent' });

beforeEach(() => {
  redis = testRedis();
  prefix = randomPrefix();
  keys = new RedisKeys(prefix);
});

afterEach(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

interface FakeHost {
  id: string;
  placement: Placement;
  here: Map<string, number>;
  draining: boolean;
  alive: boolean;
}

describe('Placement', () => {
  const numbers = Array.from({ length: 10 }, (_, i) => `1-${100 + i}`);
  let hosts: FakeHost[];
  const live = (): Promise<HostBeat[]> =>
    Promise.resolve(hosts.filter((h) => h.alive).map((h) => ({ hostId: h.id, draining: h.draining }) as HostBeat));

  const host = (id: string, spacingMs = 0): FakeHost => {
    const here = new Map<string, number>();
    const h: FakeHost = { id, here, draining: false, alive: true, placement: undefined as unknown as Placement };
    h.placement = new Placement({
      redis,
      keys,
      hostId: id,
      ttlMs: 60_000,
      spacingMs,
      staggerMs: 0,
      running: () => Promise.resolve(numbers),
      liveHosts: live,
      nudge: () => undefined,
      log,
      local: {
        localKeys: () => [...here.keys()],
        pickSlot: () => 0,
        slotOf: (k) => here.get(k),
        assignLocal: (k, slot) => here.set(k, slot),
        unassignLocal: (k) => here.delete(k),
      },
    });
    hosts.push(h);
    return h;
  };
  const passes = async (n = 12) => {
    for (let i = 0; i < n; i++) for (const h of hosts.filter((x) => x.alive)) await h.placement.tick();
  };
  const owners = async () => (await redis.mget(...numbers.map((k) => keys.placement(k)))).map((v) => parseOwner(v)?.hostId);
  /** Every number runs on exactly the host its claim names. */
  const consistent = async () => {
    const o = await owners();
    numbers.forEach((k, i) => {
      const running = hosts.filter((h) => h.alive && h.here.has(k)).map((h) => h.id);
      expect(running).toEqual([o[i]]);
    });
  };

  beforeEach(() => {
    hosts = [];
  });

  it('a lone host takes every number; a second one gets its share handed over, one per pass', async () => {
    const a = host('a');
    await passes(1);
    expect(a.here.size).toBe(10);
    const b = host('b');
    await b.placement.tick();
    // b is below its share but nothing is free: it waits for a to hand numbers over.
    expect(b.here.size).toBe(0);
    await a.placement.tick();
    // One number per pass, handed over in the background.
    await new Promise((r) => setTimeout(r, 50));
    await b.placement.tick();
    expect(b.here.size).toBe(1);
    await passes(20);
    await new Promise((r) => setTimeout(r, 50));
    await passes(2);
    expect([a.here.size, b.here.size]).toEqual([5, 5]);
    await consistent();
  });

  it('hands over no faster than the spacing', async () => {
    const a = host('a', 60_000);
    await passes(1);
    host('b', 60_000);
    await passes(10);
    await new Promise((r) => setTimeout(r, 50));
    await passes(2);
    expect(hosts.map((h) => h.here.size)).toEqual([9, 1]);
    expect(a.here.size).toBe(9);
  });

  it('the numbers of a host that stops go to the others; a claim lost while running is taken back', async () => {
    host('a');
    host('b');
    const c = host('c');
    await passes(20);
    await new Promise((r) => setTimeout(r, 100));
    await passes(3);
    expect(hosts.map((h) => h.here.size).sort()).toEqual([3, 3, 4]);
    await consistent();
    // c stops: it frees its numbers, the others take them at their next pass.
    c.draining = true;
    await c.placement.drain(() => Promise.resolve());
    c.alive = false;
    c.here.clear();
    await passes(2);
    expect(hosts.filter((h) => h.alive).map((h) => h.here.size)).toEqual([5, 5]);
    await consistent();
    // Redis lost a claim (an outage past the TTL): its host takes it again, nobody else runs it.
    const [first] = numbers;
    const holder = hosts.find((h) => h.here.has(first!))!;
    await redis.del(keys.placement(first!));
    await holder.placement.tick();
    await passes(2);
    expect(holder.here.has(first!)).toBe(true);
    await consistent();
  });

  it('quotas: even, the remainder to the hosts that run the most, the same on every host', () => {
    expect(quotasFor(new Map([['a', 4], ['b', 4], ['c', 2]]), 10)).toEqual(new Map([['a', 4], ['b', 3], ['c', 3]]));
    expect(quotasFor(new Map([['b', 0], ['a', 0]]), 3)).toEqual(new Map([['a', 2], ['b', 1]]));
    expect(quotasFor(new Map([['a', 33], ['b', 33]]), 100)).toEqual(new Map([['a', 50], ['b', 50]]));
  });

  it('a host whose claim another host took stops the number', async () => {
    const a = host('a');
    await passes(1);
    const [first] = numbers;
    await redis.set(keys.placement(first!), 'b/0', 'PX', 60_000);
    await a.placement.tick();
    expect(a.here.has(first!)).toBe(false);
    expect(a.here.size).toBe(9);
  });
});
