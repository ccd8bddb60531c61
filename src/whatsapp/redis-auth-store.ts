/** WhatsApp auth state in Redis, so any host can open a number: atomic, fenced by the lease, optionally sealed. */
import { type AuthenticationCreds, type SignalDataSet, type SignalDataTypeMap, BufferJSON, initAuthCreds } from '@whiskeysockets/baileys';
import type { Redis } from 'ioredis';
import { isSealed, openSealed, SealOpenError, seal } from '../lib/seal.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';
import { type AuthFence, AuthFencedError, AuthStoreKeyError, type AuthSnapshot, type AuthStore, type InstanceAuth, InvalidInstanceKeyError, reviveKey, SIGNAL_KEY_TYPES } from './auth-store.js';

/**
 * Sets and deletes Signal keys in one step, only while the lease still names
 * the holder. KEYS: keys hash, lease key. ARGV: holder ('' = unfenced), then
 * field, value pairs (value '' deletes). Returns -1 when fenced.
 */
const SET_KEYS = new LuaScript<number>('AuthSetKeys', `
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
`);

/** Writes the credentials only while the lease names the holder. KEYS: creds, lease key. ARGV: holder ('' = unfenced), value. */
const SET_CREDS = new LuaScript<number>('AuthSetCreds', `
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`);

/** Replaces an instance's whole state. KEYS: creds, keys hash. ARGV: creds value, then field, value pairs. */
const REPLACE = new LuaScript<number>('AuthReplace', `
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
`);

/** Fields per HSET batch when restoring (keeps one script call's arguments bounded). */
const RESTORE_BATCH = 500;

/**
 * Auth state under the instance's prefix: the creds as one string
 * (`auth:<instance>:creds`) and every Signal key as a field of one hash
 * (`auth:<instance>:keys`, field `<type>/<id>`), values as BufferJSON text.
 *
 * - Atomic: each `keys.set` (Baileys batches a transaction's keys) and each
 *   creds save is one Lua script, so a crash leaves the old or the new
 *   state; reads are one HMGET per batch Baileys asks for.
 * - Fenced: with an {@link AuthFence}, the script first checks that the
 *   lease key still names this session's holder, in the same atomic step,
 *   and refuses the write otherwise ({@link AuthFencedError}): a host paused
 *   past its lease cannot write stale keys when it wakes.
 * - Sealed: with a key (`AUTH_STORE_KEY`) every value is AES-256-GCM sealed,
 *   bound to its key and field; a value that does not open (wrong key),
 *   or a sealed value read without a key, is an {@link AuthStoreKeyError},
 *   never "no session" (which would mean a new QR). Plain values written
 *   before a key was set are still read, and sealed when next written.
 */
export class RedisAuthStore implements AuthStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly sealKey?: Buffer,
  ) {}

  private check(instanceKey: string): void {
    if (!parseInstanceKey(instanceKey)) throw new InvalidInstanceKeyError(`invalid instance key ${JSON.stringify(instanceKey)}`);
  }

  private encode(json: string, place: string): string {
    return this.sealKey ? seal(this.sealKey, json, place) : json;
  }

  private decode(instanceKey: string, stored: string, place: string): string {
    if (!isSealed(stored)) return stored;
    if (!this.sealKey) throw new AuthStoreKeyError(`the auth state of ${instanceKey} in Redis is encrypted: set AUTH_STORE_KEY to the key it was written with`);
    try {
      return openSealed(this.sealKey, stored, place);
    } catch (err) {
      if (err instanceof SealOpenError) throw new AuthStoreKeyError(`AUTH_STORE_KEY does not decrypt the auth state of ${instanceKey} in Redis (a different key than it was written with?)`, { cause: err });
      throw err;
    }
  }

  private async readCreds(instanceKey: string): Promise<string | undefined> {
    const key = this.keys.authCreds(instanceKey);
    const stored = await this.redis.get(key);
    return stored === null ? undefined : this.decode(instanceKey, stored, key);
  }

  async load(instanceKey: string, fence?: AuthFence): Promise<InstanceAuth> {
    this.check(instanceKey);
    const credsKey = this.keys.authCreds(instanceKey);
    const hash = this.keys.authKeys(instanceKey);
    const json = await this.readCreds(instanceKey);
    const creds: AuthenticationCreds = json === undefined ? initAuthCreds() : (JSON.parse(json, BufferJSON.reviver) as AuthenticationCreds);
    const leaseKey = fence?.leaseKey ?? '';
    const holder = fence?.holder ?? '';
    const fenced = (result: number, what: string): void => {
      if (result === -1) throw new AuthFencedError(`${what} of ${instanceKey} not written: this session no longer holds the instance's lease`);
    };
    const state: InstanceAuth['state'] = {
      creds,
      keys: {
        get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
          const out: { [id: string]: SignalDataTypeMap[T] } = {};
          if (ids.length === 0) return out;
          const fields = ids.map((id) => `${type}/${id}`);
          const values = await this.redis.hmget(hash, ...fields);
          ids.forEach((id, i) => {
            const stored = values[i];
            if (stored === null || stored === undefined) return;
            out[id] = reviveKey(type, this.decode(instanceKey, stored, `${hash}#${fields[i]!}`)) as SignalDataTypeMap[T];
          });
          return out;
        },
        set: async (data: SignalDataSet) => {
          const args: string[] = [holder];
          for (const [type, entries] of Object.entries(data)) {
            for (const [id, value] of Object.entries(entries ?? {})) {
              const field = `${type}/${id}`;
              args.push(field, value === null || value === undefined ? '' : this.encode(JSON.stringify(value, BufferJSON.replacer), `${hash}#${field}`));
            }
          }
          if (args.length === 1) return;
          fenced(await SET_KEYS.run(this.redis, [hash, leaseKey || hash], args), 'Signal keys');
        },
      },
    };
    return {
      state,
      saveCreds: async () => {
        const value = this.encode(JSON.stringify(state.creds, BufferJSON.replacer), credsKey);
        fenced(await SET_CREDS.run(this.redis, [credsKey, leaseKey || credsKey], [holder, value]), 'credentials');
      },
    };
  }

  async isLinked(instanceKey: string): Promise<boolean> {
    this.check(instanceKey);
    const json = await this.readCreds(instanceKey);
    return json !== undefined && Boolean((JSON.parse(json, BufferJSON.reviver) as AuthenticationCreds).me?.id);
  }

  async remove(instanceKey: string): Promise<void> {
    this.check(instanceKey);
    await this.redis.del(this.keys.authCreds(instanceKey), this.keys.authKeys(instanceKey));
  }

  async reset(instanceKey: string): Promise<void> {
    this.check(instanceKey);
    const credsKey = this.keys.authCreds(instanceKey);
    await REPLACE.run(this.redis, [credsKey, this.keys.authKeys(instanceKey)], [this.encode(JSON.stringify(initAuthCreds(), BufferJSON.replacer), credsKey)]);
  }

  async instances(): Promise<string[]> {
    const found = new Set<string>();
    const pattern = this.keys.authCredsPattern;
    const head = pattern.slice(0, pattern.indexOf('*'));
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      for (const k of keys) {
        const instanceKey = k.slice(head.length, -':creds'.length);
        if (parseInstanceKey(instanceKey)) found.add(instanceKey);
      }
    } while (cursor !== '0');
    return [...found].sort();
  }

  async snapshot(instanceKey: string): Promise<AuthSnapshot | undefined> {
    this.check(instanceKey);
    const creds = await this.readCreds(instanceKey);
    if (creds === undefined) return undefined;
    const hash = this.keys.authKeys(instanceKey);
    const keys: AuthSnapshot['keys'] = [];
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(hash, cursor, 'COUNT', 500);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const field = flat[i]!;
        const slash = field.indexOf('/');
        const type = field.slice(0, slash);
        if (slash < 0 || !(SIGNAL_KEY_TYPES as readonly string[]).includes(type)) continue;
        keys.push({ type, id: field.slice(slash + 1), json: this.decode(instanceKey, flat[i + 1]!, `${hash}#${field}`) });
      }
    } while (cursor !== '0');
    return { creds, keys };
  }

  /**
   * Small states (the usual: a few hundred keys) are replaced in one script;
   * larger ones are written to a staging hash in batches and renamed over
   * the live one, so readers never see a mix.
   */
  async restore(instanceKey: string, snapshot: AuthSnapshot): Promise<void> {
    this.check(instanceKey);
    const credsKey = this.keys.authCreds(instanceKey);
    const hash = this.keys.authKeys(instanceKey);
    const pairs = snapshot.keys.flatMap((k) => {
      const field = `${k.type}/${k.id}`;
      return [field, this.encode(k.json, `${hash}#${field}`)];
    });
    const creds = this.encode(snapshot.creds, credsKey);
    if (pairs.length <= RESTORE_BATCH * 2) {
      await REPLACE.run(this.redis, [credsKey, hash], [creds, ...pairs]);
      return;
    }
    const staging = `${hash}:restore`;
    await this.redis.del(staging);
    for (let i = 0; i < pairs.length; i += RESTORE_BATCH * 2) await this.redis.hset(staging, ...pairs.slice(i, i + RESTORE_BATCH * 2));
    await this.redis.multi().rename(staging, hash).set(credsKey, creds).exec();
  }
}
