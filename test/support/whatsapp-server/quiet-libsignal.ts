/**
 * Silences libsignal's own console lines ("Closing session: SessionEntry {…}",
 * "Closing open session in favor of incoming prekey bundle", …): libsignal
 * prints whole session records, with keys, on every session change, in the
 * client and in the simulated devices alike. Other console output passes.
 */
const LIBSIGNAL_PREFIXES = [
  'Closing session',
  'Closing open session',
  'Opening session',
  'Removing old closed session',
  'Session already',
  'Decrypted message with closed session',
  'Migrating session',
];

type ConsoleMethod = 'info' | 'warn' | 'log';

/** Installs the filter on `console.info`, `console.warn` and `console.log`; returns a function that removes it. */
export function quietLibsignal(): () => void {
  const methods: ConsoleMethod[] = ['info', 'warn', 'log'];
  const originals = methods.map((m) => [m, console[m].bind(console)] as const);
  for (const [method, original] of originals) {
    console[method] = (...args: unknown[]) => {
      const first = args[0];
      if (typeof first === 'string' && LIBSIGNAL_PREFIXES.some((p) => first.startsWith(p))) return;
      original(...args);
    };
  }
  return () => {
    for (const [method, original] of originals) console[method] = original;
  };
}
