/** Keeps each Chatwoot conversation under its per-minute message limit. */
import type { LRUCache } from 'lru-cache';
import { boundedCache } from '../lib/bounded-cache.js';

/**
 * Keeps each Chatwoot conversation under its message limit (Chatwoot answers
 * 422 "Too many messages" past 200 per minute per conversation). A sliding
 * window per conversation, kept in memory: one worker owns an instance, so
 * it sees every message of its conversations. A window is dropped a minute
 * after its conversation's last message (it holds nothing then), and at most
 * `maxConversations` are kept.
 */
export class ConversationPacer {
  private readonly windows: LRUCache<number, number[]>;

  constructor(
    private readonly limit = 180,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
    maxConversations = 50_000,
  ) {
    this.windows = boundedCache<number, number[]>(maxConversations, { ttl: windowMs, ttlResolution: 0, perf: { now } });
  }

  /** Conversations with a window in memory. */
  get size(): number {
    this.windows.purgeStale();
    return this.windows.size;
  }

  /**
   * Takes a slot for one message and returns 0, or returns how long to wait
   * before one frees up (taking nothing). `limit` below the pacer's own keeps
   * the rest of the window free for others (the history import leaves room
   * for live messages).
   */
  reserve(conversationId: number, limit = this.limit): number {
    const now = this.now();
    const times = this.windows.get(conversationId) ?? [];
    let start = 0;
    while (start < times.length && times[start]! <= now - this.windowMs) start++;
    const live = start > 0 ? times.slice(start) : times;
    if (live.length >= limit) {
      this.windows.set(conversationId, live);
      return live[live.length - limit]! + this.windowMs - now;
    }
    live.push(now);
    this.windows.set(conversationId, live);
    return 0;
  }

  forget(conversationId: number): void {
    this.windows.delete(conversationId);
  }
}
