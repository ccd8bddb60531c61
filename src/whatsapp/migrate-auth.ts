/** Moves instances' auth state between the file store and the Redis store without a new QR. */
import type { Redis } from 'ioredis';
import type { RedisKeys } from '../redis/keys.js';
import { type AuthSnapshot, type AuthStore, AuthStoreKeyError } from './auth-store.js';

export interface MigrationResult {
  /** Instances whose state now lives in the target store only. */
  moved: string[];
  /** Instances left where they were, with the reason. */
  skipped: Array<{ instanceKey: string; reason: string }>;
}

function sameSnapshot(a: AuthSnapshot, b: AuthSnapshot): boolean {
  if (a.creds !== b.creds || a.keys.length !== b.keys.length) return false;
  const index = new Map(b.keys.map((k) => [`${k.type}/${k.id}`, k.json]));
  return a.keys.every((k) => index.get(`${k.type}/${k.id}`) === k.json);
}

/**
 * Copies each instance's whole state from `from` to `to`, reads it back to
 * compare, and only then removes it from `from`. An instance whose lease is
 * held (a daemon is running it) is skipped: its state may change during the
 * copy. One that already has state in `to` is skipped too, unless `replace`.
 */
export async function migrateAuth(opts: { from: AuthStore; to: AuthStore; redis: Redis; keys: RedisKeys; replace?: boolean }): Promise<MigrationResult> {
  const result: MigrationResult = { moved: [], skipped: [] };
  for (const instanceKey of await opts.from.instances()) {
    if ((await opts.redis.exists(opts.keys.lease(instanceKey))) === 1) {
      result.skipped.push({ instanceKey, reason: 'a daemon is running it (its lease is held): stop Ponte first' });
      continue;
    }
    let snapshot: AuthSnapshot | undefined;
    try {
      snapshot = await opts.from.snapshot(instanceKey);
    } catch (err) {
      // A state this configuration cannot read (AUTH_STORE_KEY) stays where it is, named.
      if (!(err instanceof AuthStoreKeyError)) throw err;
      result.skipped.push({ instanceKey, reason: err.message });
      continue;
    }
    if (!snapshot) {
      result.skipped.push({ instanceKey, reason: 'no credentials' });
      continue;
    }
    if (!opts.replace && (await opts.to.snapshot(instanceKey))) {
      result.skipped.push({ instanceKey, reason: 'the target store already has state for it' });
      continue;
    }
    await opts.to.restore(instanceKey, snapshot);
    const copy = await opts.to.snapshot(instanceKey);
    if (!copy || !sameSnapshot(snapshot, copy)) {
      result.skipped.push({ instanceKey, reason: 'the copy did not read back equal; the source was kept' });
      continue;
    }
    await opts.from.remove(instanceKey);
    result.moved.push(instanceKey);
  }
  return result;
}
