/** The auth store `AUTH_STORE` names, built from the configuration. */
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { parseSealKey } from '../lib/seal.js';
import type { RedisKeys } from '../redis/keys.js';
import { type AuthStore, FileAuthStore } from './auth-store.js';
import { RedisAuthStore } from './redis-auth-store.js';

/** `file`: under `BAILEYS_AUTH_SESSIONS_PARENT_DIR`; `redis`: under the prefix, sealed with `AUTH_STORE_KEY` when set. */
export function createAuthStore(config: Readonly<Config>, redis: Redis, keys: RedisKeys, kind: 'file' | 'redis' = config.whatsapp.authStore): AuthStore {
  if (kind === 'file') return new FileAuthStore(config.whatsapp.sessionsDir);
  const key = config.whatsapp.authStoreKey;
  return new RedisAuthStore(redis, keys, key === undefined ? undefined : parseSealKey(key));
}
