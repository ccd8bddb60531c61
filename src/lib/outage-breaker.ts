/** The circuit breaker that pauses an instance's delivery through an outage and probes with backoff. */
import { backoffDelayMs } from './backoff.js';

/**
 * The circuit breaker of one instance's delivery (DESIGN.md, Decisions 3).
 *
 * States:
 * - closed: deliveries go through; `consecutive` is 0.
 * - open: a delivery met an outage (connection error, timeout, 5xx, lost
 *   response) or a rate limit (429); the queue is paused for `delayMs` and
 *   every further failure doubles the pause up to `maxDelayMs`.
 * - half-open: the pause ended and the next delivery is the probe; success
 *   closes the breaker, failure opens it again with a longer pause.
 *
 * BullMQ does the pausing (`queue.rateLimit`); this class only decides how
 * long, and counts. Outages never use up a message's attempts.
 */
export type TripCause = 'outage' | 'rate_limited';

export interface OutageBreakerOptions {
  minDelayMs: number;
  maxDelayMs: number;
  /** First pause after a 429 without Retry-After: Chatwoot throttles per minute. */
  rateLimitDelayMs: number;
  random?: () => number;
}

export class OutageBreaker {
  private consecutive = 0;
  private openUntilMs = 0;
  private trips = 0;

  constructor(private readonly opts: OutageBreakerOptions) {}

  /** Records a failure and returns how long delivery pauses. */
  trip(cause: TripCause, retryAfterMs?: number): number {
    this.consecutive += 1;
    this.trips += 1;
    let delay: number;
    if (cause === 'rate_limited' && retryAfterMs !== undefined && retryAfterMs > 0) {
      delay = retryAfterMs;
    } else {
      const base = cause === 'rate_limited' ? this.opts.rateLimitDelayMs : this.opts.minDelayMs;
      delay = backoffDelayMs(this.consecutive, base, Math.max(base, this.opts.maxDelayMs), 0.2, this.opts.random);
    }
    this.openUntilMs = Math.max(this.openUntilMs, Date.now() + delay);
    return delay;
  }

  success(): void {
    this.consecutive = 0;
  }

  get state(): 'closed' | 'open' | 'half-open' {
    if (this.consecutive === 0) return 'closed';
    return Date.now() < this.openUntilMs ? 'open' : 'half-open';
  }

  get totalTrips(): number {
    return this.trips;
  }
}
