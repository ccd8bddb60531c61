/**
 * What the loopback server knows about a WhatsApp account that has linked
 * devices: its phone number and LID, its primary phone (a simulated Signal
 * device that signs companions, gets their `deviceSentMessage` copies and
 * sends them history), the history it sends, and each linked companion with
 * the keys it registered and uploaded.
 */
import { createHash } from 'node:crypto';
import { jidEncode } from '@whiskeysockets/baileys';
import type { BinaryNode } from '@whiskeysockets/baileys';
import { Inbox } from './inbox.js';
import { type PreKeyBundle, SignalDevice } from './signal-device.js';
import type { AccountReceipt, ReceivedMessage } from './types.js';
import type { ClientConnection } from './connection.js';
import type { AccountHistory, SentHistoryChunk } from './history.js';

export const pnJid = (user: string, device?: number): string => jidEncode(user, 's.whatsapp.net', device);
export const lidJid = (user: string, device?: number): string => jidEncode(user, 'lid', device);

/** A stable 15-digit LID for a phone number (used when a test gives none). */
export function deriveLid(phone: string): string {
  const n = BigInt(`0x${createHash('sha256').update(`lid:${phone}`).digest('hex').slice(0, 16)}`);
  return `1${(n % 10n ** 14n).toString().padStart(14, '0')}`;
}

/** The Signal keys a companion registers with (pairing payload) and later replaces by uploading. */
export interface CompanionKeys {
  registrationId: number;
  identityKey: Buffer;
  signedPreKey: { keyId: number; publicKey: Buffer; signature: Buffer };
}

/** One linked device (a Baileys socket) of an account. */
export class CompanionDevice {
  /** One-time pre-keys uploaded and not yet handed out, oldest first. */
  readonly preKeys: Array<{ keyId: number; publicKey: Buffer }> = [];
  /** Pre-key uploads received (each the number of keys it carried). */
  readonly uploads: number[] = [];
  /** Stanzas for this device while it is offline; sent (marked `offline`) at its next login. */
  readonly offlineQueue: BinaryNode[] = [];
  /** The live, logged-in connection, if any. */
  connection: ClientConnection | undefined;
  /** False once the phone unlinks it: its next login gets `<failure reason=401>`. */
  linked = true;
  /** True until the phone has sent its history, which it does once, at the first login after pairing. */
  historyPending = true;
  /** The history-sync notifications the phone sent this companion, in order. */
  readonly history = new Inbox<SentHistoryChunk>('history notifications');

  constructor(
    readonly account: LinkedAccount,
    readonly deviceId: number,
    readonly keyIndex: number,
    public keys: CompanionKeys,
  ) {}

  get pnJid(): string {
    return pnJid(this.account.phone, this.deviceId);
  }

  get lidJid(): string {
    return lidJid(this.account.lid, this.deviceId);
  }

  /** Records a pre-key upload (`<iq xmlns=encrypt type=set>`). */
  recordUpload(keys: CompanionKeys, preKeys: Array<{ keyId: number; publicKey: Buffer }>): void {
    this.keys = keys;
    this.preKeys.push(...preKeys);
    this.uploads.push(preKeys.length);
  }

  /** The bundle a sender fetches; it consumes one one-time pre-key, as WhatsApp does. */
  takeBundle(): PreKeyBundle {
    return { ...this.keys, preKey: this.preKeys.shift() };
  }
}

export class LinkedAccount {
  /** The account's primary phone (device 0). */
  readonly primary = new SignalDevice();
  /** What the primary phone decrypted: the copies of messages its companions sent. */
  readonly primaryInbox = new Inbox<ReceivedMessage>('primary phone messages');
  /** Receipts its companions addressed to the account itself (`peer_msg`, `hist_sync`, …). */
  readonly receipts = new Inbox<AccountReceipt>('account receipts');
  /**
   * What the phone sends a newly linked companion at its first login; the
   * server's default (every peer as a contact) when undefined; nothing when `false`.
   */
  history: AccountHistory | false | undefined;
  readonly companions = new Map<number, CompanionDevice>();
  private nextDeviceId = 1;
  private nextKeyIndex = 1;

  constructor(
    /** Phone number, digits only. */
    readonly phone: string,
    /** LID user part, digits only. */
    readonly lid: string,
  ) {}

  get pnJid(): string {
    return pnJid(this.phone);
  }

  get lidJid(): string {
    return lidJid(this.lid);
  }

  addCompanion(keys: CompanionKeys): CompanionDevice {
    const companion = new CompanionDevice(this, this.nextDeviceId++, this.nextKeyIndex++, keys);
    this.companions.set(companion.deviceId, companion);
    return companion;
  }

  /** Companions still linked, in linking order. */
  linkedCompanions(): CompanionDevice[] {
    return [...this.companions.values()].filter((c) => c.linked);
  }

  close(): void {
    this.primaryInbox.close();
    this.receipts.close();
    for (const c of this.companions.values()) c.history.close();
    this.primary.close();
  }
}
