/** Short Redis locks over several keys (`SET NX PX`), taken in order so callers never deadlock. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AppError } from '../lib/errors.js';

export class LockTimeoutError extends AppError {
  readonly code = 'LOCK_TIMEOUT';
}

const RELEASE = `
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
`;

/**
 * Runs `fn` while holding every lock in `keys` (Redis `SET NX PX`, taken in
 * sorted order so two callers never deadlock). A holder that dies frees its
 * locks after `ttlMs`. Waits up to `waitMs` for the locks, then throws a
 * {@link LockTimeoutError}.
 */
export async function withLocks<T>(redis: Redis, keys: readonly string[], fn: () => Promise<T>, opts: { ttlMs?: number; waitMs?: number } = {}): Promise<T> {
  const ttlMs = opts.ttlMs ?? 30_000;
  const waitMs = opts.waitMs ?? 60_000;
  const token = randomBytes(12).toString('hex');
  const sorted = [...new Set(keys)].sort();
  const held: string[] = [];
  const giveUpAt = Date.now() + waitMs;
  try {
    for (const key of sorted) {
      let delay = 5;
      while ((await redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') {
        if (Date.now() > giveUpAt) throw new LockTimeoutError(`lock ${key} still held after ${waitMs} ms`);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 200);
      }
      held.push(key);
    }
    return await fn();
  } finally {
    if (held.length > 0) await redis.eval(RELEASE, held.length, ...held, token);
  }
}
