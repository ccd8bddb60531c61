/** AES-256-GCM sealing of values at rest, bound to where they are stored. */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AppError } from './errors.js';

/** A sealed value that does not open: a wrong key, or bytes changed (or moved from another place). */
export class SealOpenError extends AppError {
  readonly code = 'SEAL_OPEN_FAILED';
}

const VERSION = 's1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Reads a 256-bit key written as 64 hex characters or as base64 (44
 * characters with padding); anything else is undefined, so configuration
 * can say what it wants.
 */
export function parseSealKey(text: string): Buffer | undefined {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(t) || /^[A-Za-z0-9_-]{43}$/.test(t)) {
    const b = Buffer.from(t, t.includes('-') || t.includes('_') ? 'base64url' : 'base64');
    return b.length === 32 ? b : undefined;
  }
  return undefined;
}

/** True when `value` was written by {@link seal}. */
export function isSealed(value: string): boolean {
  return value.startsWith(VERSION);
}

/**
 * `s1:<base64(iv ‖ tag ‖ ciphertext)>`. `place` (e.g. the Redis key and
 * field) is authenticated with the value, so a sealed value copied to
 * another place does not open there.
 */
export function seal(key: Buffer, plain: string, place: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(place, 'utf8'));
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return VERSION + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
}

/** The plain text of a sealed value; {@link SealOpenError} when the key or the place is not the one it was sealed with. */
export function openSealed(key: Buffer, sealed: string, place: string): string {
  if (!isSealed(sealed)) throw new SealOpenError('not a sealed value');
  const raw = Buffer.from(sealed.slice(VERSION.length), 'base64');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new SealOpenError('sealed value is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(place, 'utf8'));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new SealOpenError('sealed value does not open with this key', { cause: err });
  }
}
