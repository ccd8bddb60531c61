/**
 * A simulated contact: the customer's phone, with its own phone number,
 * LID, push name and Signal state. It sends the linked account encrypted
 * texts and images (media hosted on the loopback media host), receipts and
 * retry receipts, and decrypts everything the linked account sends it.
 */
import { randomBytes } from 'node:crypto';
import type { MediaType, proto } from '@whiskeysockets/baileys';
import type { BinaryNode } from '@whiskeysockets/baileys';
import { type CompanionDevice, type LinkedAccount, lidJid, pnJid } from './account.js';
import { node, unixSeconds } from './binary-node.js';
import { Inbox } from './inbox.js';
import { decryptMedia, encryptMedia } from './media-crypto.js';
import type { MediaHost } from './media-host.js';
import { bundleToRetryNodes, registrationNode, SignalDevice } from './signal-device.js';
import type { AccountReceipt, ReceivedMessage } from './types.js';

/** What a peer needs from the server. */
export interface PeerNetwork {
  readonly media: MediaHost;
  /** The account a phone number, jid or account object names. */
  resolveAccount(to: string | LinkedAccount): LinkedAccount;
  /** Hands a stanza to a companion now, or at its next login. */
  deliver(companion: CompanionDevice, stanza: BinaryNode): void;
}

export interface SendOptions {
  /** How the stanza names the sender: by LID (default, as WhatsApp does today) or by phone number. */
  addressing?: 'lid' | 'pn';
  /** Add the other form as an alternate (`sender_pn` when LID-addressed, `sender_lid` when PN-addressed). Default true. */
  alternate?: boolean;
  /** The `notify` attribute; the peer's push name by default, `null` for none. */
  pushName?: string | null;
  /** Message id; a random 32-hex id by default. */
  id?: string;
  /** Quote an earlier message of this chat. */
  quoted?: QuotedMessage;
}

/** A message being replied to. */
export interface QuotedMessage {
  id: string;
  /** Its text, copied into `quotedMessage` as WhatsApp does. */
  text?: string;
  /** It was the linked account's message (the quote's `participant` is then the account). */
  fromAccount?: boolean;
}

export interface ImageOptions extends SendOptions {
  caption?: string;
  mimetype?: string;
  width?: number;
  height?: number;
}

/** What `send…` did: the id, and the jid the peer used as sender. */
export interface SentMessage {
  id: string;
  from: string;
  /** How many linked companions it was encrypted for. */
  devices: number;
}

export type ReceiptType = 'delivery' | 'read' | 'played';

const MEDIA_FIELDS = [
  ['imageMessage', 'image'],
  ['videoMessage', 'video'],
  ['audioMessage', 'audio'],
  ['documentMessage', 'document'],
  ['stickerMessage', 'sticker'],
] as const;

export const newMessageId = (): string => randomBytes(16).toString('hex').toUpperCase();

export class SimulatedPeer {
  readonly device = new SignalDevice();
  /** What the linked account sent this peer, decrypted, in arrival order. */
  readonly messages = new Inbox<ReceivedMessage>('peer messages');
  /** Receipts the linked account sent this peer (delivery, read, …). */
  readonly receipts = new Inbox<AccountReceipt>('peer receipts');

  constructor(
    private readonly network: PeerNetwork,
    /** Phone number, digits only. */
    readonly phone: string,
    /** LID user part, digits only. */
    readonly lid: string,
    readonly pushName: string,
  ) {}

  get pnJid(): string {
    return pnJid(this.phone);
  }

  get lidJid(): string {
    return lidJid(this.lid);
  }

  sendText(to: string | LinkedAccount, text: string, opts: SendOptions = {}): Promise<SentMessage> {
    const account = this.network.resolveAccount(to);
    const message: proto.IMessage = opts.quoted
      ? { extendedTextMessage: { text, contextInfo: this.quoteContext(account, opts) } }
      : { conversation: text };
    return this.sendMessage(account, message, opts);
  }

  /** Encrypts `bytes` as WhatsApp media, hosts them, and sends an `imageMessage` pointing at them. */
  async sendImage(to: string | LinkedAccount, bytes: Uint8Array, opts: ImageOptions = {}): Promise<SentMessage> {
    const account = this.network.resolveAccount(to);
    const enc = await encryptMedia(bytes, 'image');
    const imageMessage: proto.Message.IImageMessage = {
      // `url` only: with a `directPath` rc14 would rebuild an https URL on the media host.
      url: this.network.media.put(enc.file, 'image'),
      mimetype: opts.mimetype ?? 'image/jpeg',
      caption: opts.caption,
      fileSha256: enc.fileSha256,
      fileEncSha256: enc.fileEncSha256,
      fileLength: enc.fileLength,
      mediaKey: enc.mediaKey,
      mediaKeyTimestamp: Math.floor(Date.now() / 1000),
      width: opts.width,
      height: opts.height,
      contextInfo: opts.quoted ? this.quoteContext(account, opts) : undefined,
    };
    return this.sendMessage(account, { imageMessage }, opts);
  }

  /** Sends any message content to every linked companion of the account. */
  async sendMessage(to: string | LinkedAccount, message: proto.IMessage, opts: SendOptions = {}): Promise<SentMessage> {
    const account = this.network.resolveAccount(to);
    const companions = account.linkedCompanions().filter((c) => c.uploads.length > 0);
    if (companions.length === 0) throw new Error(`account ${account.phone} has no linked device that ever logged in`);
    const id = opts.id ?? newMessageId();
    const byLid = (opts.addressing ?? 'lid') === 'lid';
    const alternate = opts.alternate ?? true;
    const pushName = opts.pushName === undefined ? this.pushName : (opts.pushName ?? undefined);
    const mediatype = MEDIA_FIELDS.find(([field]) => message[field])?.[1];
    for (const companion of companions) {
      const { type, ciphertext } = await this.encryptFor(companion, message);
      const attrs = {
        from: byLid ? this.lidJid : this.pnJid,
        id,
        t: unixSeconds(),
        type: mediatype ? 'media' : 'text',
        notify: pushName,
        sender_pn: byLid && alternate ? this.pnJid : undefined,
        sender_lid: !byLid && alternate ? this.lidJid : undefined,
      };
      this.network.deliver(companion, node('message', attrs, [node('enc', { v: '2', type, mediatype }, ciphertext)]));
    }
    return { id, from: byLid ? this.lidJid : this.pnJid, devices: companions.length };
  }

  /**
   * Sends a delivery (no `type`), read or played receipt for messages the
   * linked account sent, from the jid it addressed them to.
   */
  sendReceipt(messageIds: string | string[], type: ReceiptType = 'delivery'): void {
    const ids = Array.isArray(messageIds) ? messageIds : [messageIds];
    const [first, ...rest] = ids;
    if (!first) throw new Error('sendReceipt needs at least one message id');
    const original = this.original(first);
    const stanza = node(
      'receipt',
      { from: original.to, id: first, t: unixSeconds(), type: type === 'delivery' ? undefined : type },
      rest.length ? [node('list', {}, rest.map((id) => node('item', { id })))] : undefined,
    );
    const account = this.network.resolveAccount(original.accountPhone);
    for (const companion of account.linkedCompanions()) this.network.deliver(companion, stanza);
  }

  /**
   * Asks the sending device to send a message again, as a phone does when
   * it cannot decrypt it: `<receipt type=retry>` with the retry count and,
   * unless `includeKeys` is false, fresh key material (registration id,
   * identity, signed pre-key and a new one-time pre-key).
   */
  sendRetryReceipt(messageId: string, opts: { count?: number; includeKeys?: boolean } = {}): void {
    const original = this.original(messageId);
    const count = opts.count ?? 1;
    const keys = opts.includeKeys === false ? [registrationNode(this.device.registrationId)] : bundleToRetryNodes(this.device.freshBundle());
    const t = unixSeconds();
    const stanza = node('receipt', { from: original.to, id: messageId, type: 'retry', t }, [
      node('retry', { count: String(count), id: messageId, t, v: '1', error: '0' }),
      ...keys,
    ]);
    const account = this.network.resolveAccount(original.accountPhone);
    const sender = account.linkedCompanions().find((c) => c.lidJid === original.from);
    if (!sender) throw new Error(`the device that sent ${messageId} is no longer linked`);
    this.network.deliver(sender, stanza);
  }

  /** Downloads, checks and decrypts the media of a message the linked account sent. */
  async downloadMedia(received: ReceivedMessage | proto.IMessage): Promise<Buffer> {
    const message = 'encType' in received ? received.message : received;
    for (const [field, type] of MEDIA_FIELDS) {
      const media = message[field];
      if (!media) continue;
      if (!media.url || !media.mediaKey) throw new Error(`${field} has no url or mediaKey`);
      const file = await this.network.media.download(media.url);
      return decryptMedia(file, media.mediaKey, type satisfies MediaType, { fileEncSha256: media.fileEncSha256, fileSha256: media.fileSha256 });
    }
    throw new Error('message has no downloadable media');
  }

  /** Called by the server with each message the linked account sent this peer. */
  acceptMessage(received: Omit<ReceivedMessage, 'copy'>): ReceivedMessage {
    const copy = this.messages.filter((m) => m.id === received.id).length;
    const record = { ...received, copy };
    this.messages.push(record);
    return record;
  }

  close(): void {
    this.messages.close();
    this.receipts.close();
    this.device.close();
  }

  private original(messageId: string): ReceivedMessage {
    const original = this.messages.items.find((m) => m.id === messageId);
    if (!original) throw new Error(`peer ${this.phone} never received message ${messageId}`);
    return original;
  }

  private quoteContext(account: LinkedAccount, opts: SendOptions): proto.IContextInfo | undefined {
    const q = opts.quoted;
    if (!q) return undefined;
    const byLid = (opts.addressing ?? 'lid') === 'lid';
    const author = q.fromAccount ? (byLid ? account.lidJid : account.pnJid) : byLid ? this.lidJid : this.pnJid;
    return { stanzaId: q.id, participant: author, quotedMessage: { conversation: q.text ?? '' } };
  }

  private async encryptFor(companion: CompanionDevice, message: proto.IMessage) {
    // The peer's phone addresses the companion by its LID device jid, as WhatsApp does today.
    const address = companion.lidJid;
    if (!(await this.device.hasSession(address))) await this.device.startSession(address, companion.takeBundle());
    return this.device.encrypt(address, message);
  }
}
