/** In-memory Baileys auth states and a silent Baileys logger, for tests and benchmarks. */
import { type AuthenticationState, initAuthCreds } from '@whiskeysockets/baileys';
import { silentLogger } from './whatsapp-server/logger.js';

/** A Baileys-compatible logger that discards everything. */
export const silentBaileysLogger = silentLogger;

/** Fresh, unlinked auth state kept in memory (for tests and benchmarks). */
export function memoryAuthState(): AuthenticationState {
  const data = new Map<string, unknown>();
  return {
    creds: initAuthCreds(),
    keys: {
      get: (type, ids) => {
        const out: Record<string, unknown> = {};
        for (const id of ids) {
          const v = data.get(`${type}:${id}`);
          if (v !== undefined) out[id] = v;
        }
        return Promise.resolve(out as never);
      },
      set: (values) => {
        for (const [type, entries] of Object.entries(values)) {
          for (const [id, v] of Object.entries(entries ?? {})) {
            if (v === null) data.delete(`${type}:${id}`);
            else data.set(`${type}:${id}`, v);
          }
        }
        return Promise.resolve();
      },
    },
  };
}

/** Linked, in-memory auth state (the sandbox treats `creds.me` as linked). */
export function linkedMemoryAuthState(phoneDigits: string): AuthenticationState {
  const state = memoryAuthState();
  state.creds.me = { id: `${phoneDigits}:1@s.whatsapp.net`, name: '~' };
  return state;
}
