/**
 * A simulated WhatsApp device's end-to-end encryption: its own identity,
 * registration id, signed pre-key and one-time pre-keys, kept in memory and
 * driven through Baileys' own libsignal repository, plus the pre-key bundle
 * shapes the server hands out (`<iq xmlns=encrypt><key>` answers, retry
 * receipts).
 */
import {
  addTransactionCapability,
  Curve,
  encodeWAMessage,
  generateSignalPubKey,
  initAuthCreds,
  KEY_BUNDLE_TYPE,
  proto,
  type SignalRepository,
  unpadRandomMax16,
} from '@whiskeysockets/baileys';
import { makeLibSignalRepository } from '@whiskeysockets/baileys/lib/Signal/libsignal.js';
import type { BinaryNode } from '@whiskeysockets/baileys';
import { node, uintBE } from './binary-node.js';
import { silentLogger } from './logger.js';
import { MemoryKeyStore } from './memory-auth-state.js';

/** A device's published keys: what a sender needs to open a Signal session to it. */
export interface PreKeyBundle {
  registrationId: number;
  /** Identity public key, 32 bytes without the Signal type prefix. */
  identityKey: Buffer;
  signedPreKey: { keyId: number; publicKey: Buffer; signature: Buffer };
  /** A one-time pre-key; absent when the device has none left. */
  preKey?: { keyId: number; publicKey: Buffer };
}

export type EncType = 'pkmsg' | 'msg';
type E2ESession = Parameters<SignalRepository['injectE2ESession']>[0]['session'];

/** The bundle in the shape `injectE2ESession` takes. */
export function bundleToSession(b: PreKeyBundle): E2ESession {
  return {
    registrationId: b.registrationId,
    identityKey: generateSignalPubKey(b.identityKey),
    signedPreKey: { keyId: b.signedPreKey.keyId, publicKey: generateSignalPubKey(b.signedPreKey.publicKey), signature: b.signedPreKey.signature },
    preKey: b.preKey && { keyId: b.preKey.keyId, publicKey: generateSignalPubKey(b.preKey.publicKey) },
  };
}

function keyNodes(b: PreKeyBundle): BinaryNode[] {
  return [
    node('type', {}, Buffer.from(KEY_BUNDLE_TYPE)),
    node('identity', {}, b.identityKey),
    ...(b.preKey ? [node('key', {}, [node('id', {}, uintBE(b.preKey.keyId, 3)), node('value', {}, b.preKey.publicKey)])] : []),
    node('skey', {}, [
      node('id', {}, uintBE(b.signedPreKey.keyId, 3)),
      node('value', {}, b.signedPreKey.publicKey),
      node('signature', {}, b.signedPreKey.signature),
    ]),
  ];
}

/** `<registration>`: a registration id in 4 big-endian bytes. */
export function registrationNode(registrationId: number): BinaryNode {
  return node('registration', {}, uintBE(registrationId, 4));
}

/** `<user jid=…>` with the bundle, as in an `<iq xmlns=encrypt type=get><key>` answer. */
export function bundleToUserNode(jid: string, b: PreKeyBundle): BinaryNode {
  return node('user', { jid }, [registrationNode(b.registrationId), ...keyNodes(b)]);
}

/** The `<registration>` and `<keys>` children of a retry receipt carrying fresh key material. */
export function bundleToRetryNodes(b: PreKeyBundle): BinaryNode[] {
  return [registrationNode(b.registrationId), node('keys', {}, keyNodes(b))];
}

/** One simulated device: a peer's phone, or the primary phone of a linked account. */
export class SignalDevice {
  private readonly creds = initAuthCreds();
  private readonly store = new MemoryKeyStore();
  private readonly repository;
  private nextPreKeyId = 1;

  constructor() {
    const keys = addTransactionCapability(this.store, silentLogger, { maxCommitRetries: 1, delayBetweenTriesMs: 0 });
    this.repository = makeLibSignalRepository({ creds: this.creds, keys }, silentLogger);
  }

  get registrationId(): number {
    return this.creds.registrationId;
  }

  /** The identity key pair; a primary phone also signs linked devices' ADV identities with it. */
  get identityKey(): { public: Buffer; private: Buffer } {
    return { public: Buffer.from(this.creds.signedIdentityKey.public), private: Buffer.from(this.creds.signedIdentityKey.private) };
  }

  /** A bundle with a one-time pre-key made for this request (each can open one session). */
  freshBundle(): PreKeyBundle {
    const keyId = this.nextPreKeyId++;
    const pair = Curve.generateKeyPair();
    this.store.set({ 'pre-key': { [String(keyId)]: pair } });
    const { signedPreKey } = this.creds;
    return {
      registrationId: this.creds.registrationId,
      identityKey: Buffer.from(this.creds.signedIdentityKey.public),
      signedPreKey: { keyId: signedPreKey.keyId, publicKey: Buffer.from(signedPreKey.keyPair.public), signature: Buffer.from(signedPreKey.signature) },
      preKey: { keyId, publicKey: Buffer.from(pair.public) },
    };
  }

  /** Whether an open session to this device address exists. */
  async hasSession(jid: string): Promise<boolean> {
    return (await this.repository.validateSession(jid)).exists;
  }

  /** Opens a session to `jid` from its published bundle. */
  async startSession(jid: string, bundle: PreKeyBundle): Promise<void> {
    await this.repository.injectE2ESession({ jid, session: bundleToSession(bundle) });
  }

  /** Encrypts a message for `jid` (padded like WhatsApp does). */
  async encrypt(jid: string, message: proto.IMessage): Promise<{ type: EncType; ciphertext: Uint8Array }> {
    return this.repository.encryptMessage({ jid, data: encodeWAMessage(message) });
  }

  /** Decrypts a message `jid` sent to this device. */
  async decrypt(jid: string, type: EncType, ciphertext: Uint8Array): Promise<proto.Message> {
    const padded = await this.repository.decryptMessage({ jid, type, ciphertext });
    return proto.Message.decode(unpadRandomMax16(padded));
  }

  /** Stops the repository's caches (their purge timers). */
  close(): void {
    this.repository.close?.();
  }
}
