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
 * Where WhatsApp auth state lives. One instance's state is used by one
 * socket at a time (the instance lease guards that). The file store serves
 * one host; a Redis store can implement the same interface for several.
 */
export interface AuthStore {
  load(instanceKey: string): Promise<InstanceAuth>;
  /** True when the instance has linked credentials (`creds.me`). */
  isLinked(instanceKey: string): Promise<boolean>;
  /** Deletes the instance's whole state (logout). */
  remove(instanceKey: string): Promise<void>;
  /** Replaces the state with fresh, unlinked credentials (a pairing attempt that ended without login). */
  reset(instanceKey: string): Promise<void>;
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
          const values = await Promise.all(ids.map((id) => readJson<SignalDataTypeMap[T]>(join(dir, keyFile(type, id)))));
          // Answer in the order asked, omitting ids that do not exist.
          const out: { [id: string]: SignalDataTypeMap[T] } = {};
          ids.forEach((id, i) => {
            let value: SignalDataTypeMap[T] | undefined = values[i];
            if (value === undefined) return;
            if (type === 'app-state-sync-key') value = proto.Message.AppStateSyncKeyData.fromObject(value as object) as unknown as SignalDataTypeMap[T];
            out[id] = value;
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
}

/** `<type>-<id>.json` with the id made safe for a file name (no separators, no dot-only names). */
function keyFile(type: string, id: string): string {
  return `${type}-${encodeURIComponent(id).replace(/\./g, '%2E')}.json`;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON.parse(text, BufferJSON.reviver) as T;
}

/** Temporary file in the same folder, fsync, rename over the target. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(JSON.stringify(value, BufferJSON.replacer));
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
