/** libsignal's console lines (session records with private keys) never reach the output; other console output does. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { routeLibraryConsole } from '../../../src/observability/library-console.js';
import { createLogger } from '../../../src/observability/logger.js';

describe('routeLibraryConsole', () => {
  it('turns libsignal lines into debug log lines without their objects, and lets the rest through', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', destination: new Writable({ write: (c: Buffer, _e, done) => (lines.push(c.toString()), done()) }) });
    const printed: unknown[][] = [];
    const info = console.info;
    const warn = console.warn;
    console.info = (...a: unknown[]) => void printed.push(a);
    console.warn = (...a: unknown[]) => void printed.push(a);
    const restore = routeLibraryConsole(log);
    try {
      const session = { ephemeralKeyPair: { privKey: Buffer.from('private-key-bytes-0001') } };
      console.info('Closing session:', session);
      console.warn('Closing open session in favor of incoming prekey bundle');
      console.warn('something else', 42);
    } finally {
      restore();
      console.info = info;
      console.warn = warn;
    }
    expect(printed).toEqual([['something else', 42]]);
    const out = lines.join('');
    expect(out).not.toContain('private-key-bytes');
    expect(out).not.toContain(Buffer.from('private-key-bytes-0001').toString('hex').slice(0, 12));
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['Closing session:', 'Closing open session in favor of incoming prekey bundle']);
  });
});
