/** boundedCache: the count bound of lru-cache's `max`, without allocating for it up front. */
import { describe, expect, it } from 'vitest';
import { boundedCache } from '../../../src/lib/bounded-cache.js';

describe('boundedCache', () => {
  it('keeps at most its count, the newest first out last, with its TTL', () => {
    let now = 1_000_000;
    const cache = boundedCache<string, number>(3, { ttl: 1000, ttlResolution: 0, perf: { now: () => now } });
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i);
    expect(cache.size).toBe(3);
    expect(cache.get('k0')).toBeUndefined();
    expect(cache.get('k4')).toBe(4);
    now += 1001;
    expect(cache.get('k4')).toBeUndefined();
  });

  it('costs next to nothing until it fills: a thousand empty caches of 50,000 under 10 MiB of heap', () => {
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    const caches = Array.from({ length: 1000 }, () => boundedCache<number, number[]>(50_000, { ttl: 60_000 }));
    const grown = process.memoryUsage().heapUsed - before;
    expect(caches).toHaveLength(1000);
    // lru-cache's `max: 50_000` with a TTL allocates about 2 MiB per cache: 2 GiB for these.
    expect(grown).toBeLessThan(10 * 1024 * 1024);
  });
});
