/** The ids of the messages a worker sent, so their echoes are not relayed back: bounded in count and age. */
import type { LRUCache } from 'lru-cache';
import { boundedCache } from '../lib/bounded-cache.js';

export interface OwnSendsOptions {
  /** Echoes arrive within seconds; an id is kept this long. */
  ttlMs?: number;
  /** At most this many ids (the oldest go first). */
  max?: number;
  /** The clock (tests). */
  now?: () => number;
}

export function ownSendIds(o: OwnSendsOptions = {}): LRUCache<string, true> {
  return boundedCache<string, true>(o.max ?? 20_000, { ttl: o.ttlMs ?? 10 * 60_000, ttlResolution: 0, ...(o.now ? { perf: { now: o.now } } : {}) });
}
