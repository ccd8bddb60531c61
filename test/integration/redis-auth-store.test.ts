import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/redis/keys.js';
import { AuthFencedError, AuthStoreKeyError, FileAuthStore, InvalidInstanceKeyError } from '../../src/whatsapp/auth-store.js';
import { migrateAuth } from '../../src/whatsapp/migrate-auth.js';
import { RedisAuthStore } from '../../src/whatsapp/redis-auth-store.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

let redis: Redis;
let prefix: string;
let keys: RedisKeys;

beforeAll(() => {
  redis = testRedis();
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = randomPrefix();
  keys = new RedisKeys(prefix);
});
afterEach(async () => {
  await deleteKeys(redis, prefix);
});

/** A linked-looking state: creds with `me`, a few keys of several types. */
async function populate(store: { load: RedisAuthStore['load'] }, instanceKey: string): Promise<void> {
  const a = await store.load(instanceKey);
  a.state.creds.me = { id: '5511987654321:3@s.whatsapp.net', name: 'Loja' };
  await a.saveCreds();
  await a.state.keys.set({
    'pre-key': { '1': { public: Buffer.from([1, 2, 3]), private: Buffer.from([4, 5, 6]) } },
    session: { '5511987654321.0': Buffer.from('session-bytes') },
    'sender-key': { '123@g.us::5511987654321::0': Buffer.from('sk') },
    'app-state-sync-key': { AAAA: { keyData: Buffer.from([9]), timestamp: 5 } },
    'lid-mapping': { '5511987654321': '218512345678901' },
  });
}

describe('RedisAuthStore', () => {
  it('keeps creds and keys across loads, Buffers included; null deletes; a batch is one answer in the order asked', async () => {
    const store = new RedisAuthStore(redis, keys);
    expect(await store.isLinked('1-12')).toBe(false);
    await populate(store, '1-12');
    const first = await store.load('1-12');
    await first.state.keys.set({ 'pre-key': { '2': { public: Buffer.alloc(1), private: Buffer.alloc(1) } } });
    await first.state.keys.set({ 'pre-key': { '2': null } });

    const b = await store.load('1-12');
    expect(b.state.creds.me?.id).toBe('5511987654321:3@s.whatsapp.net');
    expect(Buffer.isBuffer(b.state.creds.noiseKey.private)).toBe(true);
    const pre = await b.state.keys.get('pre-key', ['3', '1', '2']);
    expect(Object.keys(pre)).toEqual(['1']);
    expect(pre['1']?.public).toEqual(Buffer.from([1, 2, 3]));
    const appKey = (await b.state.keys.get('app-state-sync-key', ['AAAA'])).AAAA;
    expect(appKey?.constructor.name).toBe('AppStateSyncKeyData');
    expect(await b.state.keys.get('lid-mapping', ['5511987654321'])).toEqual({ '5511987654321': '218512345678901' });
    expect(await store.isLinked('1-12')).toBe(true);
    expect(await store.instances()).toEqual(['1-12']);
  });

  it('refuses instance keys that are not <digits>-<digits>', async () => {
    const store = new RedisAuthStore(redis, keys);
    for (const bad of ['1-2:x', '*', '', '1-2*']) await expect(store.load(bad), bad).rejects.toBeInstanceOf(InvalidInstanceKeyError);
  });

  it('with AUTH_STORE_KEY nothing readable is stored; a wrong key or no key is a clear error, never a fresh login', async () => {
    const key = randomBytes(32);
    const sealed = new RedisAuthStore(redis, keys, key);
    await populate(sealed, '2-3');
    const raw = [await redis.get(keys.authCreds('2-3')), ...Object.values(await redis.hgetall(keys.authKeys('2-3')))].join('\n');
    expect(raw).not.toMatch(/5511987654321|noiseKey|218512345678901/);
    expect((await (await sealed.load('2-3')).state.keys.get('lid-mapping', ['5511987654321']))['5511987654321']).toBe('218512345678901');

    await expect(new RedisAuthStore(redis, keys, randomBytes(32)).load('2-3')).rejects.toThrow(AuthStoreKeyError);
    await expect(new RedisAuthStore(redis, keys).load('2-3')).rejects.toThrow(/encrypted: set AUTH_STORE_KEY/);
    await expect(new RedisAuthStore(redis, keys, randomBytes(32)).isLinked('2-3')).rejects.toThrow(AuthStoreKeyError);

    // A sealed value moved to another field does not open there.
    const hash = keys.authKeys('2-3');
    await redis.hset(hash, 'pre-key/9', (await redis.hget(hash, 'pre-key/1'))!);
    await expect((await sealed.load('2-3')).state.keys.get('pre-key', ['9'])).rejects.toThrow(AuthStoreKeyError);
  });

  it('plain state written before a key was set is still read, and sealed when written again', async () => {
    await populate(new RedisAuthStore(redis, keys), '4-5');
    const sealed = new RedisAuthStore(redis, keys, randomBytes(32));
    const a = await sealed.load('4-5');
    expect(a.state.creds.me?.name).toBe('Loja');
    await a.saveCreds();
    expect(await redis.get(keys.authCreds('4-5'))).toMatch(/^s1:/);
  });

  it('fenced: once the lease names another holder, neither keys nor creds are written', async () => {
    const store = new RedisAuthStore(redis, keys);
    await populate(store, '6-7');
    await redis.set(keys.lease('6-7'), 'host-a:1');
    const a = await store.load('6-7', { leaseKey: keys.lease('6-7'), holder: 'host-a:1' });
    await a.state.keys.set({ 'pre-key': { '5': { public: Buffer.from([5]), private: Buffer.from([5]) } } });
    expect(Object.keys(await a.state.keys.get('pre-key', ['5']))).toEqual(['5']);

    await redis.set(keys.lease('6-7'), 'host-b:1');
    await expect(a.state.keys.set({ 'pre-key': { '6': { public: Buffer.from([6]), private: Buffer.from([6]) }, '1': null } })).rejects.toBeInstanceOf(AuthFencedError);
    a.state.creds.me = { id: 'stale@s.whatsapp.net' };
    await expect(a.saveCreds()).rejects.toBeInstanceOf(AuthFencedError);
    // Nothing of the refused writes landed: not the new key, not the delete, not the creds.
    const b = await store.load('6-7');
    expect(Object.keys(await b.state.keys.get('pre-key', ['1', '6']))).toEqual(['1']);
    expect(b.state.creds.me?.id).toBe('5511987654321:3@s.whatsapp.net');

    await redis.del(keys.lease('6-7'));
    await expect(a.saveCreds()).rejects.toBeInstanceOf(AuthFencedError);
  });

  it('reset leaves fresh unlinked creds and no keys; remove leaves nothing', async () => {
    const store = new RedisAuthStore(redis, keys);
    await populate(store, '8-9');
    await store.reset('8-9');
    expect(await store.isLinked('8-9')).toBe(false);
    expect(await redis.exists(keys.authKeys('8-9'))).toBe(0);
    await store.remove('8-9');
    expect(await redis.exists(keys.authCreds('8-9'))).toBe(0);
    expect(await store.instances()).toEqual([]);
  });

  it('restores a large state through a staging hash, whole', async () => {
    const store = new RedisAuthStore(redis, keys, randomBytes(32));
    const many = Array.from({ length: 1200 }, (_, i) => ({ type: 'pre-key', id: String(i), json: JSON.stringify({ n: i }) }));
    await store.restore('1-1', { creds: JSON.stringify({ me: { id: 'x@s.whatsapp.net' } }), keys: many });
    expect(await redis.hlen(keys.authKeys('1-1'))).toBe(1200);
    expect(await redis.exists(`${keys.authKeys('1-1')}:restore`)).toBe(0);
    expect((await store.snapshot('1-1'))?.keys.length).toBe(1200);
  });
});

describe('migrateAuth', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ponte-migrate-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('file → redis → file moves the whole state, readable the same, and leaves no copy behind', async () => {
    const file = new FileAuthStore(dir);
    const red = new RedisAuthStore(redis, keys, randomBytes(32));
    await populate(file, '1-12');
    await populate(file, '1-13');
    const before = await file.snapshot('1-12');
    await redis.set(keys.lease('1-13'), 'running');

    const there = await migrateAuth({ from: file, to: red, redis, keys });
    expect(there.moved).toEqual(['1-12']);
    expect(there.skipped.map((s) => s.instanceKey)).toEqual(['1-13']);
    expect(there.skipped[0]?.reason).toMatch(/stop Ponte first/);
    expect(await file.instances()).toEqual(['1-13']);
    const inRedis = await red.load('1-12');
    expect(inRedis.state.creds.me?.id).toBe('5511987654321:3@s.whatsapp.net');
    expect((await inRedis.state.keys.get('sender-key', ['123@g.us::5511987654321::0']))['123@g.us::5511987654321::0']).toEqual(Buffer.from('sk'));

    const back = await migrateAuth({ from: red, to: file, redis, keys });
    expect(back.moved).toEqual(['1-12']);
    expect(await red.instances()).toEqual([]);
    const after = await file.snapshot('1-12');
    expect(after?.creds).toBe(before?.creds);
    expect(new Set(after?.keys.map((k) => `${k.type}/${k.id}=${k.json}`))).toEqual(new Set(before?.keys.map((k) => `${k.type}/${k.id}=${k.json}`)));
  });

  it('does not overwrite state the target already has', async () => {
    const file = new FileAuthStore(dir);
    const red = new RedisAuthStore(redis, keys);
    await populate(file, '3-3');
    await populate(red, '3-3');
    const r = await migrateAuth({ from: file, to: red, redis, keys });
    expect(r.moved).toEqual([]);
    expect(r.skipped[0]?.reason).toMatch(/already has state/);
    expect(await file.instances()).toEqual(['3-3']);
  });
});
