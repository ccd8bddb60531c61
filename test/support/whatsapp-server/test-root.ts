/**
 * The loopback server's Noise certificate authority: a fixed test root key
 * that signs a fresh intermediate, which signs the server's static key, in
 * the `CertChain` shape WhatsApp sends in its ServerHello.
 *
 * rc14 accepts any chain (its `Curve.verify` cannot fail, baileys.md §7), so
 * nothing has to be trusted today. `trustTestRoot()` pins this root in
 * Baileys' `WA_CERT_DETAILS` for the day upstream fixes verification; the key
 * is a constant so a child process (see `preload.ts`) pins the same root.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { Curve, proto, WA_CERT_DETAILS } from '@whiskeysockets/baileys';

// A Curve25519 private key, already clamped. It only ever signs test chains.
const TEST_ROOT_PRIVATE_KEY = Buffer.from('50a8b3c1d2e4f50617283940a1b2c3d4e5f60718293a4b5c6d7e8f901a2b3c4d', 'hex');
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX_LENGTH = 12;
const CHAIN_VALIDITY_S = 24 * 3600;

function x25519PublicKey(privateKey: Buffer): Buffer {
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' });
  return Buffer.from(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(X25519_SPKI_PREFIX_LENGTH));
}

/** The public half of the test root (32 bytes, no Signal type prefix). */
export const TEST_ROOT_PUBLIC_KEY: Buffer = x25519PublicKey(TEST_ROOT_PRIVATE_KEY);

/**
 * Makes this process's Baileys verify Noise chains against the test root
 * instead of WhatsApp's. Returns a function that restores the previous key.
 */
export function trustTestRoot(): () => void {
  const previous = WA_CERT_DETAILS.PUBLIC_KEY;
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(TEST_ROOT_PUBLIC_KEY);
  return () => {
    WA_CERT_DETAILS.PUBLIC_KEY = previous;
  };
}

/** Whether this process currently pins the test root. */
export function trustsTestRoot(): boolean {
  return Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY).equals(TEST_ROOT_PUBLIC_KEY);
}

/**
 * A `CertChain` for a server whose Noise static public key is `leafKey`:
 * root (serial `WA_CERT_DETAILS.SERIAL`) → intermediate (serial 1) → leaf (serial 2).
 */
export function issueNoiseCertChain(leafKey: Uint8Array): Uint8Array {
  const intermediate = Curve.generateKeyPair();
  const now = Math.floor(Date.now() / 1000);
  const details = (serial: number, issuerSerial: number, key: Uint8Array) =>
    proto.CertChain.NoiseCertificate.Details.encode({ serial, issuerSerial, key, notBefore: now - 60, notAfter: now + CHAIN_VALIDITY_S }).finish();
  const intermediateDetails = details(1, WA_CERT_DETAILS.SERIAL, intermediate.public);
  const leafDetails = details(2, 1, leafKey);
  return proto.CertChain.encode({
    intermediate: { details: intermediateDetails, signature: Curve.sign(TEST_ROOT_PRIVATE_KEY, intermediateDetails) },
    leaf: { details: leafDetails, signature: Curve.sign(intermediate.private, leafDetails) },
  }).finish();
}
