/**
 * WhatsApp's media encryption (AES-256-CBC with keys expanded from a random
 * media key by Baileys' `getMediaKeys`, and a 10-byte HMAC-SHA256 tag), both
 * ways: the peer encrypts what it sends and checks and decrypts what the
 * linked account uploads.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { getMediaKeys, type MediaType } from '@whiskeysockets/baileys';

const MAC_LENGTH = 10;

/** Encrypted media and the fields a media message carries about it. */
export interface EncryptedMedia {
  /** What is stored on the media host: ciphertext followed by the MAC. */
  file: Buffer;
  mediaKey: Buffer;
  fileSha256: Buffer;
  fileEncSha256: Buffer;
  fileLength: number;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

async function mediaKeys(mediaKey: Uint8Array, type: MediaType): Promise<{ iv: Uint8Array; cipherKey: Uint8Array; macKey: Uint8Array }> {
  const { iv, cipherKey, macKey } = await getMediaKeys(mediaKey, type);
  if (!macKey) throw new Error('getMediaKeys gave no MAC key');
  return { iv, cipherKey, macKey };
}

export async function encryptMedia(plaintext: Uint8Array, type: MediaType): Promise<EncryptedMedia> {
  const mediaKey = randomBytes(32);
  const { iv, cipherKey, macKey } = await mediaKeys(mediaKey, type);
  const aes = createCipheriv('aes-256-cbc', cipherKey, iv);
  const ciphertext = Buffer.concat([aes.update(plaintext), aes.final()]);
  const mac = createHmac('sha256', macKey).update(iv).update(ciphertext).digest().subarray(0, MAC_LENGTH);
  const file = Buffer.concat([ciphertext, mac]);
  return { file, mediaKey, fileSha256: sha256(plaintext), fileEncSha256: sha256(file), fileLength: plaintext.length };
}

/** Thrown when stored media does not match what its message says about it. */
export class MediaIntegrityError extends Error {
  readonly code = 'MEDIA_INTEGRITY';
}

/** Checks the MAC (and, when given, the encrypted and plain hashes), then decrypts. */
export async function decryptMedia(
  file: Uint8Array,
  mediaKey: Uint8Array,
  type: MediaType,
  expect: { fileEncSha256?: Uint8Array | null; fileSha256?: Uint8Array | null } = {},
): Promise<Buffer> {
  const { iv, cipherKey, macKey } = await mediaKeys(mediaKey, type);
  const bytes = Buffer.from(file);
  if (expect.fileEncSha256 && !sha256(bytes).equals(Buffer.from(expect.fileEncSha256))) throw new MediaIntegrityError('fileEncSha256 mismatch');
  const ciphertext = bytes.subarray(0, bytes.length - MAC_LENGTH);
  const mac = createHmac('sha256', macKey).update(iv).update(ciphertext).digest().subarray(0, MAC_LENGTH);
  if (!timingSafeEqual(mac, bytes.subarray(bytes.length - MAC_LENGTH))) throw new MediaIntegrityError('media MAC mismatch');
  const aes = createDecipheriv('aes-256-cbc', cipherKey, iv);
  const plaintext = Buffer.concat([aes.update(ciphertext), aes.final()]);
  if (expect.fileSha256 && !sha256(plaintext).equals(Buffer.from(expect.fileSha256))) throw new MediaIntegrityError('fileSha256 mismatch');
  return plaintext;
}
