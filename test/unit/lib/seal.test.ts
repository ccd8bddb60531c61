import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isSealed, openSealed, parseSealKey, SealOpenError, seal } from '../../../src/lib/seal.js';

describe('seal', () => {
  const key = randomBytes(32);

  it('opens what it sealed, at the same place only', () => {
    const sealed = seal(key, '{"a":1}', 'auth:1-2:creds');
    expect(isSealed(sealed)).toBe(true);
    expect(sealed).not.toContain('"a"');
    expect(openSealed(key, sealed, 'auth:1-2:creds')).toBe('{"a":1}');
    expect(() => openSealed(key, sealed, 'auth:1-3:creds')).toThrow(SealOpenError);
  });

  it('a different key or a changed byte does not open', () => {
    const sealed = seal(key, 'secret', 'p');
    expect(() => openSealed(randomBytes(32), sealed, 'p')).toThrow(SealOpenError);
    const raw = Buffer.from(sealed.slice(3), 'base64');
    raw[raw.length - 1]! ^= 1;
    expect(() => openSealed(key, `s1:${raw.toString('base64')}`, 'p')).toThrow(SealOpenError);
    expect(() => openSealed(key, 's1:AAAA', 'p')).toThrow(SealOpenError);
  });

  it('two seals of one value differ (fresh IV each time)', () => {
    expect(seal(key, 'x', 'p')).not.toBe(seal(key, 'x', 'p'));
  });

  it('reads keys as 64 hex characters or base64 of 32 bytes, nothing else', () => {
    expect(parseSealKey('ab'.repeat(32))?.length).toBe(32);
    expect(parseSealKey(key.toString('base64'))?.equals(key)).toBe(true);
    expect(parseSealKey(key.toString('base64url'))?.equals(key)).toBe(true);
    expect(parseSealKey('correct horse battery staple')).toBeUndefined();
    expect(parseSealKey('ab'.repeat(16))).toBeUndefined();
    expect(parseSealKey(randomBytes(24).toString('base64'))).toBeUndefined();
  });
});
