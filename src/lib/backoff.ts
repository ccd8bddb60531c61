/**
 * Exponential backoff with jitter.
 *
 * `baseMs * 2^(attempt-1)`, capped at
 * `maxMs`, then spread by ±`jitter` so that many instances recovering from
 * the same outage do not probe in lock-step. `attempt` starts at 1.
 */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, jitter = 0.2, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  const spread = exp * jitter * (random() * 2 - 1);
  return Math.max(0, Math.round(Math.min(maxMs, exp + spread)));
}
