/**
 * In-memory Baileys auth state for tests: a key store that keeps every
 * value as BufferJSON text (as a database would) and creds that a new socket
 * reads back from their last save, so a second socket behaves like a restart.
 */
import {
  type AuthenticationCreds,
  type AuthenticationState,
  BufferJSON,
  initAuthCreds,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap,
  type SignalKeyStore,
} from '@whiskeysockets/baileys';

/** A `SignalKeyStore` over a Map of serialized values. */
export class MemoryKeyStore implements SignalKeyStore {
  private readonly data = new Map<string, string>();

  get<T extends keyof SignalDataTypeMap>(type: T, ids: string[]): { [id: string]: SignalDataTypeMap[T] } {
    const out: { [id: string]: SignalDataTypeMap[T] } = {};
    for (const id of ids) {
      const text = this.data.get(`${type}:${id}`);
      if (text === undefined) continue;
      const value: unknown = JSON.parse(text, BufferJSON.reviver);
      // Baileys expects app-state keys as proto objects, like its file store does.
      out[id] = (type === 'app-state-sync-key' ? proto.Message.AppStateSyncKeyData.fromObject(value as object) : value) as SignalDataTypeMap[T];
    }
    return out;
  }

  set(data: SignalDataSet): void {
    for (const [type, values] of Object.entries(data)) {
      for (const [id, value] of Object.entries(values ?? {})) {
        if (value === null || value === undefined) this.data.delete(`${type}:${id}`);
        else this.data.set(`${type}:${id}`, JSON.stringify(value, BufferJSON.replacer));
      }
    }
  }

  clear(): void {
    this.data.clear();
  }

  /** How many values of this type are stored. */
  count(type: keyof SignalDataTypeMap): number {
    let n = 0;
    for (const key of this.data.keys()) if (key.startsWith(`${type}:`)) n++;
    return n;
  }
}

/** One WhatsApp account's auth state across several sockets. */
export class MemoryAuthState {
  readonly keys = new MemoryKeyStore();
  private creds: AuthenticationCreds = initAuthCreds();
  private saved: string | undefined;

  /** Give this to `creds.update`: it saves the creds the socket holds. */
  readonly saveCreds = (): void => {
    this.saved = JSON.stringify(this.creds, BufferJSON.replacer);
  };

  /** The state for a new socket: the creds as last saved, fresh ones before any save. */
  forSocket(): AuthenticationState {
    if (this.saved !== undefined) this.creds = JSON.parse(this.saved, BufferJSON.reviver) as AuthenticationCreds;
    return { creds: this.creds, keys: this.keys };
  }

  /** The creds as last saved (undefined before the first save). */
  savedCreds(): AuthenticationCreds | undefined {
    return this.saved === undefined ? undefined : (JSON.parse(this.saved, BufferJSON.reviver) as AuthenticationCreds);
  }
}
