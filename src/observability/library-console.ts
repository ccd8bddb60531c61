/** Keeps what WhatsApp's Signal library prints to the console (whole session records, private keys included) out of the output. */
import type { Logger } from 'pino';

/** The lines libsignal writes with `console.*` (lib/session_record.js, session_builder.js, session_cipher.js). */
const LIBSIGNAL_LINES = [
  'Closing session',
  'Closing open session',
  'Opening session',
  'Removing old closed session',
  'Session already',
  'Decrypted message with closed session',
  'Migrating session',
  'Failed to decrypt message with any known session',
  'Session error:',
  'V1 session storage migration error',
  'WARNING: Expected pubkey of length 33',
  'Unhandled bucket type',
];

type ConsoleMethod = 'log' | 'info' | 'warn' | 'error' | 'debug';

/**
 * libsignal prints session records (ephemeral private keys among them) with
 * `console.info` on every session change, which would bypass the logger's
 * redaction. In a worker its lines go to `log` at debug level as their first
 * sentence only, never their objects; any other console output passes.
 * Returns a function that restores the console.
 */
export function routeLibraryConsole(log: Logger): () => void {
  const methods: ConsoleMethod[] = ['log', 'info', 'warn', 'error', 'debug'];
  const originals = methods.map((m) => [m, console[m].bind(console)] as const);
  for (const [method, original] of originals) {
    console[method] = (...args: unknown[]) => {
      const first = args[0];
      if (typeof first === 'string' && LIBSIGNAL_LINES.some((p) => first.startsWith(p))) {
        log.debug({ module: 'libsignal' }, first.split('\n')[0]!.slice(0, 200));
        return;
      }
      original(...args);
    };
  }
  return () => {
    for (const [method, original] of originals) console[method] = original;
  };
}
