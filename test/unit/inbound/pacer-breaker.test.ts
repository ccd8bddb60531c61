import { describe, expect, it } from 'vitest';
import { ConversationPacer } from '../../../src/inbound/conversation-pacer.js';
import { OutageBreaker } from '../../../src/lib/outage-breaker.js';
import { backoffDelayMs } from '../../../src/lib/backoff.js';

describe('ConversationPacer', () => {
  it('allows `limit` messages per window and says how long to wait for the next slot', () => {
    let now = 1_000_000;
    const pacer = new ConversationPacer(3, 60_000, () => now);
    expect([pacer.reserve(7), pacer.reserve(7), pacer.reserve(7)]).toEqual([0, 0, 0]);
    now += 10_000;
    expect(pacer.reserve(7)).toBe(50_000);
    expect(pacer.reserve(8)).toBe(0);
    now += 50_000;
    expect(pacer.reserve(7)).toBe(0);
  });

  it('a lower limit (the history import) leaves the rest of the window to the others', () => {
    let now = 1_000_000;
    const pacer = new ConversationPacer(4, 60_000, () => now);
    expect([pacer.reserve(7, 2), pacer.reserve(7, 2)]).toEqual([0, 0]);
    now += 1000;
    // The import waits until the oldest of its two slots frees; live messages still get the other two.
    expect(pacer.reserve(7, 2)).toBe(59_000);
    expect([pacer.reserve(7), pacer.reserve(7)]).toEqual([0, 0]);
    expect(pacer.reserve(7)).toBe(59_000);
    now += 500;
    // Four in the window: the import waits until only one is left in it.
    expect(pacer.reserve(7, 2)).toBe(60_000 - 500);
  });

  it('keeps no window for a conversation quiet for a minute, and at most maxConversations', () => {
    let now = 1_000_000;
    const pacer = new ConversationPacer(180, 60_000, () => now, 1000);
    for (let c = 1; c <= 5000; c++) pacer.reserve(c);
    expect(pacer.size).toBe(1000);
    now += 60_001;
    expect(pacer.size).toBe(0);
    // A conversation that comes back starts a fresh window.
    expect(pacer.reserve(1)).toBe(0);
    expect(pacer.size).toBe(1);
  });
});

describe('OutageBreaker', () => {
  const half = () => 0.5; // no jitter
  it('doubles the pause per consecutive outage up to the cap, and closes on success', () => {
    const breaker = new OutageBreaker({ minDelayMs: 100, maxDelayMs: 1000, rateLimitDelayMs: 5000, random: half });
    expect([1, 2, 3, 4, 5].map(() => breaker.trip('outage'))).toEqual([100, 200, 400, 800, 1000]);
    expect(breaker.state).not.toBe('closed');
    breaker.success();
    expect(breaker.state).toBe('closed');
    expect(breaker.trip('outage')).toBe(100);
    expect(breaker.totalTrips).toBe(6);
  });

  it('honours Retry-After on a 429, and otherwise starts from the rate-limit delay', () => {
    const breaker = new OutageBreaker({ minDelayMs: 100, maxDelayMs: 60_000, rateLimitDelayMs: 5000, random: half });
    expect(breaker.trip('rate_limited', 7000)).toBe(7000);
    breaker.success();
    expect(breaker.trip('rate_limited')).toBe(5000);
  });
});

describe('backoffDelayMs', () => {
  it('stays within ±jitter of the exponential value and under the cap', () => {
    for (const r of [0, 0.25, 0.5, 0.75, 0.999]) {
      const d = backoffDelayMs(3, 100, 10_000, 0.2, () => r);
      expect(d).toBeGreaterThanOrEqual(320);
      expect(d).toBeLessThanOrEqual(480);
    }
    expect(backoffDelayMs(30, 100, 10_000, 0.2, () => 0.999)).toBeLessThanOrEqual(10_000);
  });
});
