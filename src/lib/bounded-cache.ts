/** An LRU cache bounded in count that allocates as it fills, not all at once. */
import { LRUCache } from 'lru-cache';

/**
 * `lru-cache` with a `max` allocates its bookkeeping for `max` entries up
 * front (key and value lists, links, and with a TTL two timestamp arrays):
 * about 40 bytes an entry, so a cache of 50,000 costs 2 MiB before it holds
 * anything, and one such cache per instance made every idle instance cost
 * megabytes. Counting each entry as size 1 against `maxSize` keeps the same
 * bound with storage that grows as entries come.
 */
export function boundedCache<K extends NonNullable<unknown>, V extends NonNullable<unknown>>(
  maxEntries: number,
  options: Omit<LRUCache.Options<K, V, unknown>, 'max' | 'maxSize' | 'sizeCalculation'> = {},
): LRUCache<K, V> {
  return new LRUCache<K, V>({ ...options, maxSize: maxEntries, sizeCalculation: () => 1 });
}
