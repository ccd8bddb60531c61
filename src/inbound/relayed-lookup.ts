/** Reads what Ponte recorded of a WhatsApp message it relayed, from any process. */
import type { Redis } from 'ioredis';
import { parseRelayed, type RelayedMessage } from '../model/relayed.js';
import type { RedisKeys } from '../redis/keys.js';

/**
 * The record of `waId` in the instance, waiting up to `waitMs` for it:
 * Chatwoot's webhook for a message can overtake Ponte's own record of
 * having created it.
 */
export async function waitForRelayed(redis: Redis, keys: RedisKeys, instanceKey: string, waId: string, waitMs = 5000): Promise<RelayedMessage | undefined> {
  const key = keys.waToCw(instanceKey, waId);
  const giveUpAt = Date.now() + waitMs;
  for (;;) {
    const v = await redis.get(key);
    if (v) return parseRelayed(v);
    if (Date.now() >= giveUpAt) return undefined;
    await new Promise((r) => setTimeout(r, 250));
  }
}
