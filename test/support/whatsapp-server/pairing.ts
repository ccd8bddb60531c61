/**
 * The primary phone's side of linking a companion: reading the QR a
 * companion shows, the pairing-code key exchange (the mirror of Baileys'
 * `requestPairingCode` and its `link_code_companion_reg` notification
 * handler), and the ADV device identity the phone signs into `pair-success`.
 */
import { randomBytes } from 'node:crypto';
import {
  aesDecryptCTR,
  aesDecryptGCM,
  aesEncryptCTR,
  Curve,
  derivePairingCodeKey,
  hkdf,
  hmacSign,
  type KeyPair,
  proto,
  WA_ADV_ACCOUNT_SIG_PREFIX,
} from '@whiskeysockets/baileys';
import type { BinaryNode } from '@whiskeysockets/baileys';
import { node, unixSeconds } from './binary-node.js';

const QR_PREFIX = 'https://wa.me/settings/linked_devices#';

/** What a companion's QR carries. */
export interface CompanionQr {
  ref: string;
  /** The companion's static Noise key (must be the one its connection used). */
  noiseKey: Buffer;
  /** The companion's Signal identity key. */
  identityKey: Buffer;
  /** The secret the phone HMACs the device identity with. */
  advSecret: Buffer;
  platformId: string;
}

export class InvalidQrError extends Error {
  readonly code = 'INVALID_QR';
}

export function parseQr(qr: string): CompanionQr {
  const body = qr.startsWith(QR_PREFIX) ? qr.slice(QR_PREFIX.length) : qr;
  const [ref, noise, identity, adv, platformId] = body.split(',');
  if (!ref || !noise || !identity || !adv || platformId === undefined) throw new InvalidQrError(`not a linking QR: ${qr.slice(0, 60)}`);
  return {
    ref,
    noiseKey: Buffer.from(noise, 'base64'),
    identityKey: Buffer.from(identity, 'base64'),
    advSecret: Buffer.from(adv, 'base64'),
    platformId,
  };
}

/**
 * The phone's signed statement that a companion identity belongs to the
 * account (`ADVSignedDeviceIdentityHMAC`): signed with the account key (the
 * primary's identity key) and HMAC'd with the ADV secret the companion shared.
 */
export function signCompanionIdentity(opts: { companionIdentityKey: Uint8Array; advSecret: Uint8Array; accountKey: KeyPair; keyIndex: number }): Uint8Array {
  const details = proto.ADVDeviceIdentity.encode({ rawId: randomBytes(4).readUInt32BE(0) >>> 1, timestamp: Math.floor(Date.now() / 1000), keyIndex: opts.keyIndex }).finish();
  const accountSignature = Curve.sign(Buffer.from(opts.accountKey.private), Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, details, opts.companionIdentityKey]));
  const signed = proto.ADVSignedDeviceIdentity.encode({ details, accountSignatureKey: opts.accountKey.public, accountSignature }).finish();
  return proto.ADVSignedDeviceIdentityHMAC.encode({ details: signed, hmac: hmacSign(signed, opts.advSecret) }).finish();
}

/** `<iq type=set><pair-success>`: the companion is linked as `deviceJid` / `lidJid`. */
export function pairSuccessNode(opts: { id: string; deviceIdentity: Uint8Array; deviceJid: string; lidJid: string; platform: string }): BinaryNode {
  return node('iq', { from: 's.whatsapp.net', type: 'set', id: opts.id, xmlns: 'md', t: unixSeconds() }, [
    node('pair-success', {}, [
      node('device-identity', {}, opts.deviceIdentity),
      node('platform', { name: opts.platform }),
      node('device', { jid: opts.deviceJid, lid: opts.lidJid }),
    ]),
  ]);
}

/** `salt(32) ‖ iv(16) ‖ AES-CTR(key)` with the key derived from the pairing code: how both sides wrap their ephemeral keys. */
async function wrapWithCode(code: string, publicKey: Uint8Array): Promise<Buffer> {
  const salt = randomBytes(32);
  const iv = randomBytes(16);
  return Buffer.concat([salt, iv, aesEncryptCTR(publicKey, await derivePairingCodeKey(code, salt), iv)]);
}

async function unwrapWithCode(code: string, wrapped: Uint8Array): Promise<Buffer> {
  const b = Buffer.from(wrapped);
  return aesDecryptCTR(b.subarray(48, 80), await derivePairingCodeKey(code, b.subarray(0, 32)), b.subarray(32, 48));
}

export class PairingCodeError extends Error {
  readonly code = 'PAIRING_CODE';
}

/**
 * One pairing-code exchange from the phone's side. `confirm(code)` is the
 * user typing the code on the phone: it yields what the `primary_hello`
 * notification carries. `finish` opens the companion's key bundle and
 * derives the ADV secret both sides then share.
 */
export class PairingCodeExchange {
  private ephemeral: KeyPair | undefined;
  private companionEphemeral: Buffer | undefined;

  constructor(
    /** `link_code_pairing_wrapped_companion_ephemeral_pub` from `companion_hello`. */
    private readonly wrappedCompanionEphemeral: Uint8Array,
    private readonly primaryIdentity: KeyPair,
  ) {}

  /** Returns `link_code_pairing_wrapped_primary_ephemeral_pub`. */
  async confirm(code: string): Promise<Buffer> {
    this.companionEphemeral = await unwrapWithCode(code, this.wrappedCompanionEphemeral);
    this.ephemeral = Curve.generateKeyPair();
    return wrapWithCode(code, this.ephemeral.public);
  }

  /**
   * Opens `link_code_pairing_wrapped_key_bundle` (salt(32) ‖ iv(12) ‖
   * AES-GCM of companion identity ‖ primary identity ‖ random(32)) and
   * returns the ADV secret. A wrong code shows here: the bundle does not open.
   */
  finish(wrappedKeyBundle: Uint8Array, companionIdentityKey: Uint8Array): Buffer {
    if (!this.ephemeral || !this.companionEphemeral) throw new PairingCodeError('finish before confirm');
    const companionShared = Curve.sharedKey(this.ephemeral.private, this.companionEphemeral);
    const b = Buffer.from(wrappedKeyBundle);
    const key = hkdf(companionShared, 32, { salt: b.subarray(0, 32), info: 'link_code_pairing_key_bundle_encryption_key' });
    let payload: Buffer;
    try {
      payload = aesDecryptGCM(b.subarray(44), key, b.subarray(32, 44), Buffer.alloc(0));
    } catch (err) {
      throw new PairingCodeError('companion key bundle does not open: wrong pairing code?', { cause: err });
    }
    const [companionIdentity, primaryIdentity, random] = [payload.subarray(0, 32), payload.subarray(32, 64), payload.subarray(64, 96)];
    if (!companionIdentity.equals(Buffer.from(companionIdentityKey))) throw new PairingCodeError('key bundle names another companion identity');
    if (!primaryIdentity.equals(Buffer.from(this.primaryIdentity.public))) throw new PairingCodeError('key bundle names another primary identity');
    const identityShared = Curve.sharedKey(Buffer.from(this.primaryIdentity.private), companionIdentity);
    return Buffer.from(hkdf(Buffer.concat([companionShared, identityShared, random]), 32, { info: 'adv_secret' }));
  }
}
