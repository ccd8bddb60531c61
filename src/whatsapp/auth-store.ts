/** WhatsApp auth state on disk, one folder per instance, written atomically. */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import {
  type AuthenticationCreds,
  type AuthenticationState,
  type SignalDataSet,
  type SignalDataTypeMap,
  BufferJSON,
  initAuthCreds,
  proto,
} from '@whiskeysockets/baileys';
import { AppError } from '../lib/errors.js';
import { parseInstanceKey } from '../model/instance-key.js';

/** One instance's auth state, plus how to persist its credentials after `creds.update`. */
export interface InstanceAuth {
  state: AuthenticationState;
  /** Persists the whole `creds` object (call on every `creds.update`). */
  saveCreds(): Promise<void>;
}

/**
 * The lease a write must still be under: the Redis key naming the holder,
 * and this session's holder id. A store that can check it in the same
 * atomic step as the write (Redis) refuses writes of a holder that lost the
 * lease (a process paused past its lease cannot write stale keys).
 */
export interface AuthFence {
  leaseKey: string;
  holder: string;
}

/** One instance's whole state as stored: creds and every Signal key, each as BufferJSON text (for moving between stores). */
export interface AuthSnapshot {
  creds: string;
  keys: Array<{ type: string; id: string; json: string }>;
}

/** Stored auth state that cannot be read with this configuration: sealed without a key, or with another key. Never answered with a fresh login. */
export class AuthStoreKeyError extends AppError {
  readonly code = 'AUTH_STORE_KEY';
}

/** A write refused because the lease it was made under is no longer this holder's. */
export class AuthFencedError extends AppError {
  readonly code = 'AUTH_FENCED';
}

/**
 * Where WhatsApp auth state lives (`AUTH_STORE`). One instance's state is
 * used by one socket at a time (the instance lease guards that). The file
 * store serves one host; the Redis store serves several.
 */
export interface AuthStore {
  load(instanceKey: string, fence?: AuthFence): Promise<InstanceAuth>;
  /** True when the instance has linked credentials (`creds.me`). */
  isLinked(instanceKey: string): Promise<boolean>;
  /** Deletes the instance's whole state (logout). */
  remove(instanceKey: string): Promise<void>;
  /** Replaces the state with fresh, unlinked credentials (a pairing attempt that ended without login). */
  reset(instanceKey: string): Promise<void>;
  /** Instance keys that have state here. */
  instances(): Promise<string[]>;
  /** The instance's whole state, undefined when it has none. */
  snapshot(instanceKey: string): Promise<AuthSnapshot | undefined>;
  /** Replaces the instance's state with `snapshot` (one step where the store allows it). */
  restore(instanceKey: string, snapshot: AuthSnapshot): Promise<void>;
}

/** Baileys' Signal key types (rc14's SignalDataTypeMap), longest first so a file or field name splits unambiguously. */
export const SIGNAL_KEY_TYPES = [
  'app-state-sync-version',
  'app-state-sync-key',
  'sender-key-memory',
  'identity-key',
  'device-list',
  'lid-mapping',
  'sender-key',
  'pre-key',
  'session',
  'tctoken',
] as const;

/** A stored key value as Baileys wants it back (app-state keys are protobuf objects). */
export function reviveKey(type: string, json: string): unknown {
  const value: unknown = JSON.parse(json, BufferJSON.reviver);
  return type === 'app-state-sync-key' ? proto.Message.AppStateSyncKeyData.fromObject(value as object) : value;
}

export class InvalidInstanceKeyError extends AppError {
  readonly code = 'INVALID_INSTANCE_KEY';
}

/**
 * Auth state on disk: `<parent>/<instance key>/creds.json` and one file per
 * Signal key (`<type>-<id>.json`). Every file is written atomically (temporary
 * file, fsync, rename), so a crash mid-write leaves the old content or the
 * new, never a torn file; unlike Baileys' `useMultiFileAuthState`, a file that
 * cannot be parsed is an error, not silently "no session".
 *
 * The instance key is validated (`<digits>-<digits>`) and the resolved path
 * checked to stay under the parent folder, so nothing can escape it.
 */
export class FileAuthStore implements AuthStore {
  private readonly parent: string;

  constructor(parentDir: string) {
    this.parent = resolve(parentDir);
  }

  /** The instance's folder; throws on anything but a valid instance key. */
  dirOf(instanceKey: string): string {
    if (!parseInstanceKey(instanceKey)) throw new InvalidInstanceKeyError(`invalid instance key ${JSON.stringify(instanceKey)}`);
    const dir = resolve(this.parent, instanceKey);
    if (!dir.startsWith(this.parent + sep)) throw new InvalidInstanceKeyError(`instance key ${instanceKey} escapes ${this.parent}`);
    return dir;
  }

  async load(instanceKey: string): Promise<InstanceAuth> {
    const dir = this.dirOf(instanceKey);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Leftovers of writes a crash interrupted; the targets are intact.
    for (const name of await readdir(dir)) if (name.endsWith('.tmp')) await unlink(join(dir, name)).catch(ignoreMissing);
    const creds = (await readJson<AuthenticationCreds>(join(dir, 'creds.json'))) ?? initAuthCreds();
    const state: AuthenticationState = {
      creds,
      keys: {
        get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
          const values = await Promise.all(ids.map((id) => readText(join(dir, keyFile(type, id)))));
          // Answer in the order asked, omitting ids that do not exist.
          const out: { [id: string]: SignalDataTypeMap[T] } = {};
          ids.forEach((id, i) => {
            const json = values[i];
            if (json !== undefined) out[id] = reviveKey(type, json) as SignalDataTypeMap[T];
          });
          return out;
        },
        set: async (data: SignalDataSet) => {
          const writes: Promise<void>[] = [];
          for (const [type, entries] of Object.entries(data)) {
            for (const [id, value] of Object.entries(entries ?? {})) {
              const file = join(dir, keyFile(type, id));
              writes.push(value === null || value === undefined ? unlink(file).catch(ignoreMissing) : writeJsonAtomic(file, value));
            }
          }
          await Promise.all(writes);
        },
      },
    };
    return { state, saveCreds: () => writeJsonAtomic(join(dir, 'creds.json'), state.creds) };
  }

  async isLinked(instanceKey: string): Promise<boolean> {
    const creds = await readJson<AuthenticationCreds>(join(this.dirOf(instanceKey), 'creds.json'));
    return Boolean(creds?.me?.id);
  }

  async remove(instanceKey: string): Promise<void> {
    await rm(this.dirOf(instanceKey), { recursive: true, force: true });
  }

  async reset(instanceKey: string): Promise<void> {
    const dir = this.dirOf(instanceKey);
    await this.remove(instanceKey);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeJsonAtomic(join(dir, 'creds.json'), initAuthCreds());
  }

  /** Instance keys that have a folder here. */
  async instances(): Promise<string[]> {
    const names = await readdir(this.parent).catch(() => [] as string[]);
    return names.filter((n) => parseInstanceKey(n) !== undefined);
  }

  async snapshot(instanceKey: string): Promise<AuthSnapshot | undefined> {
    const dir = this.dirOf(instanceKey);
    const creds = await readText(join(dir, 'creds.json'));
    if (creds === undefined) return undefined;
    const keys: AuthSnapshot['keys'] = [];
    for (const name of await readdir(dir)) {
      const parsed = parseKeyFile(name);
      if (!parsed) continue;
      const json = await readText(join(dir, name));
      if (json !== undefined) keys.push({ ...parsed, json });
    }
    return { creds, keys };
  }

  /** Writes into a fresh folder beside the instance's, then swaps the two: a crash leaves the old state or the new one. */
  async restore(instanceKey: string, snapshot: AuthSnapshot): Promise<void> {
    const dir = this.dirOf(instanceKey);
    const next = `${dir}.restore-${randomBytes(4).toString('hex')}`;
    await mkdir(next, { recursive: true, mode: 0o700 });
    try {
      for (const k of snapshot.keys) await writeTextAtomic(join(next, keyFile(k.type, k.id)), k.json);
      await writeTextAtomic(join(next, 'creds.json'), snapshot.creds);
      const old = `${dir}.old-${randomBytes(4).toString('hex')}`;
      await rename(dir, old).catch(ignoreMissing);
      await rename(next, dir);
      await rm(old, { recursive: true, force: true });
    } catch (err) {
      await rm(next, { recursive: true, force: true });
      throw err;
    }
  }
}

/** The type and id a key file holds (the inverse of `keyFile`), undefined for other files. */
function parseKeyFile(name: string): { type: string; id: string } | undefined {
  if (!name.endsWith('.json') || name === 'creds.json') return undefined;
  const type = SIGNAL_KEY_TYPES.find((t) => name.startsWith(`${t}-`));
  if (!type) return undefined;
  return { type, id: decodeURIComponent(name.slice(type.length + 1, -'.json'.length)) };
}

/** `<type>-<id>.json` with the id made safe for a file name (no separators, no dot-only names). */
function keyFile(type: string, id: string): string {
  return `${type}-${encodeURIComponent(id).replace(/\./g, '%2E')}.json`;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  const text = await readText(file);
  return text === undefined ? undefined : (JSON.parse(text, BufferJSON.reviver) as T);
}

/** Temporary file in the same folder, fsync, rename over the target. */
export function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  return writeTextAtomic(file, JSON.stringify(value, BufferJSON.replacer));
}

async function writeTextAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(ignoreMissing);
    throw err;
  }
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
