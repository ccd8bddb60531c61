/** Constant-time comparison of secrets (tokens, signatures). */
import { timingSafeEqual } from 'node:crypto';

/** True when `a` and `b` are the same string; takes the same time wherever they first differ. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
