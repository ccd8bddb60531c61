/** A simulated WhatsApp account behind the socket interface: the sandbox driver's socket. */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  type AnyMessageContent,
  type AuthenticationCreds,
  type BaileysEventMap,
  type Contact,
  type WAMessage,
  type WAMessageKey,
  jidNormalizedUser,
  makeEventBuffer,
  proto,
} from '@whiskeysockets/baileys';
import { AppError } from '../lib/errors.js';
import { brazilianVariants, canonicalBrazilian } from '../lib/phone.js';
import { closeError } from '../whatsapp/disconnect-policy.js';
import type { SocketFactory, SocketFactoryOptions, WaSocket } from '../whatsapp/socket.js';
import type { SandboxCdn } from './cdn.js';
import { buildMessage, newWaMessageId } from './message-builder.js';
import { type OutboxEntry, SANDBOX_DISCONNECTS, type SandboxDisconnect } from './schemas.js';

export { SANDBOX_DISCONNECTS, type OutboxEntry, type SandboxDisconnect };

/** What the sandbox records of every message Ponte sends (the outbox). */
export interface SandboxOptions {
  /** Time between QR codes (WhatsApp: 60 s for the first, 20 s after). */
  qrIntervalMs?: number;
  /** QR codes per attempt before the socket closes with 408 "QR refs attempts ended" (WhatsApp sends 6). */
  qrRefs?: number;
  /** Numbers (digits) the simulated WhatsApp does not know; every other number is on WhatsApp. */
  notOnWhatsApp?: ReadonlySet<string>;
  /** Media the simulated WhatsApp serves, by SHA-256 (hex); shared by an instance's sockets. */
  media?: Pick<SandboxCdn, 'open'>;
  /** Group subjects the simulated WhatsApp knows, by group JID. */
  groups?: Map<string, string>;
  /** The LID ⇄ phone-number pairs the simulated WhatsApp revealed (LID JID → phone-number JID). */
  lids?: Pick<Map<string, string>, 'get'>;
  /** Called with the ids of messages this socket marked read. */
  onRead?(ids: string[], instanceKey: string): void;
  /** Until when (ms) the simulated WhatsApp refuses this instance's sends to chats that did not write in 24 h (error 463). */
  reachoutLockedUntil?(instanceKey: string): number | undefined;
  /** Called with each message this socket sends. */
  onSend?(entry: OutboxEntry, instanceKey: string): void;
  /** Called when this socket opens as the linked number, sends, and closes (the connection log). */
  onConnection?(event: 'open' | 'send' | 'close', socket: number, instanceKey: string, id?: string): void;
  /** Called with each poll this socket sends: what the simulated voters encrypt their votes with. */
  onPoll?(pollWaId: string, poll: { secret: Buffer; creatorJid: string }, instanceKey: string): void;
}

/**
 * A simulated WhatsApp account behind the {@link WaSocket} interface. It
 * emits what a live rc14 socket emits, through Baileys' own event emitter
 * and with real `proto.WebMessageInfo` objects, so the rest of Ponte cannot
 * tell it from a phone:
 * - not linked (`creds.me` unset): `connecting`, then a QR every
 *   `qrIntervalMs`, then a 408 "QR refs attempts ended" close; a `scan`
 *   links it the way WhatsApp does (credentials updated, then a 515 close
 *   that asks for a new socket);
 * - linked: `connecting`, then `open`;
 * - `receive` delivers `messages.upsert`, `receipt` a `messages.update`,
 *   `disconnect` closes with a chosen `DisconnectReason`.
 */
let sockets = 0;

export class SandboxSocket implements WaSocket {
  readonly ev;
  private closed = false;
  /** This socket among the process's (the connection log's `socket`). */
  private readonly serial = ++sockets;
  private opened = false;
  private readonly creds: AuthenticationCreds;
  private qrTimer: NodeJS.Timeout | undefined;
  private refs = 0;
  private readonly sentIndex = new Map<string, WAMessage>();
  /** When each chat last wrote to this number (the simulated WhatsApp's view of who started a chat). */
  private readonly lastIncoming = new Map<string, number>();

  constructor(
    /** What a simulated account reads of a socket's options (it connects nowhere and re-sends nothing). */
    private readonly options: Pick<SocketFactoryOptions, 'instanceKey' | 'auth' | 'logger' | 'browser'>,
    private readonly sandbox: SandboxOptions = {},
  ) {
    this.ev = makeEventBuffer(options.logger);
    this.creds = options.auth.creds;
    // A live socket reports `connecting` right after construction; listeners
    // attach synchronously before that.
    queueMicrotask(() => {
      if (this.closed) return;
      this.ev.emit('connection.update', { connection: 'connecting' });
      if (this.creds.me?.id) {
        this.opened = true;
        this.sandbox.onConnection?.('open', this.serial, options.instanceKey);
        this.ev.emit('connection.update', { connection: 'open', isNewLogin: false });
      } else this.nextQr();
    });
  }

  get user(): Contact | undefined {
    return this.creds.me ?? undefined;
  }

  get linked(): boolean {
    return Boolean(this.creds.me?.id) && !this.closed;
  }

  get awaitingScan(): boolean {
    return !this.closed && !this.creds.me?.id && this.refs > 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private nextQr(): void {
    if (this.closed) return;
    if (this.refs >= (this.sandbox.qrRefs ?? 6)) {
      this.end(closeError(408, 'QR refs attempts ended'));
      return;
    }
    this.refs += 1;
    const ref = randomBytes(12).toString('base64');
    const noise = Buffer.from(this.creds.noiseKey.public).toString('base64');
    const identity = Buffer.from(this.creds.signedIdentityKey.public).toString('base64');
    this.ev.emit('connection.update', { qr: `${ref},${noise},${identity},${this.creds.advSecretKey},sandbox` });
    this.qrTimer = setTimeout(() => this.nextQr(), this.sandbox.qrIntervalMs ?? 20_000);
    this.qrTimer.unref();
  }

  /** The phone scanned the QR (or confirmed a pairing code): link as `phone`, then restart like WhatsApp (515). */
  scan(phone: string): void {
    if (this.closed) throw new SandboxStateError('the socket is closed');
    if (this.creds.me?.id && !this.creds.pairingCode) throw new SandboxStateError('already linked');
    if (this.qrTimer) clearTimeout(this.qrTimer);
    const digits = phone.replace(/\D/g, '');
    this.creds.me = { id: `${digits}:1@s.whatsapp.net`, name: '~', lid: `${lidOf(digits)}:1@lid` };
    this.creds.pairingCode = undefined;
    this.ev.emit('creds.update', { me: this.creds.me, pairingCode: undefined });
    this.ev.emit('connection.update', { isNewLogin: true, qr: undefined });
    queueMicrotask(() => this.end(closeError(515, 'Stream Errored (restart required)')));
  }

  /** Messages arriving from WhatsApp, as one `messages.upsert`. */
  receive(messages: WAMessage[], type: 'notify' | 'append' = 'notify'): void {
    if (!this.linked) throw new SandboxStateError('the instance is not connected');
    for (const m of messages) {
      if (m.key.fromMe) continue;
      for (const jid of [m.key.remoteJid, m.key.remoteJidAlt]) if (jid) this.lastIncoming.set(jidNormalizedUser(jid), Date.now());
    }
    this.ev.emit('messages.upsert', { messages, type });
  }

  /**
   * The phone sends history: one `messaging-history.set` as rc14 emits it
   * for a RECENT chunk. Keys carry no alternate address (a history
   * message's protobuf key has none); LID ⇄ number pairs come as
   * `lidPnMappings`, chats newest message first, and the first set after the
   * link is `isLatest` (Baileys counts the processed notifications in the
   * credentials, as here).
   */
  history(messages: WAMessage[], contacts: Contact[] = []): void {
    if (!this.linked) throw new SandboxStateError('the instance is not connected');
    const lidPnMappings: Array<{ lid: string; pn: string }> = [];
    const byChat = new Map<string, WAMessage[]>();
    for (const m of messages) {
      const k = m.key;
      for (const [a, b] of [[k.remoteJid, k.remoteJidAlt], [k.participant, k.participantAlt]]) {
        if (a?.endsWith('@lid') && b?.endsWith('@s.whatsapp.net')) lidPnMappings.push({ lid: a, pn: b });
        if (b?.endsWith('@lid') && a?.endsWith('@s.whatsapp.net')) lidPnMappings.push({ lid: b, pn: a });
      }
      delete k.remoteJidAlt;
      delete k.participantAlt;
      delete k.addressingMode;
      const chat = k.remoteJid!;
      byChat.set(chat, [...(byChat.get(chat) ?? []), m]);
    }
    const seconds = (m: WAMessage): number => Number(m.messageTimestamp ?? 0);
    const ordered: WAMessage[] = [];
    const chats = [...byChat].map(([id, list]) => {
      const newestFirst = [...list].sort((a, b) => seconds(b) - seconds(a));
      ordered.push(...newestFirst);
      const name = contacts.find((c) => c.id === id)?.name;
      return { id, conversationTimestamp: seconds(newestFirst[0]!), unreadCount: 0, ...(name ? { name } : {}), messages: [{ message: newestFirst[0]! }] };
    });
    const processed = this.creds.processedHistoryMessages ?? [];
    const isLatest = processed.length === 0;
    const notification = { key: { remoteJid: this.creds.me?.id ?? '', fromMe: true, id: newWaMessageId() }, messageTimestamp: Math.floor(Date.now() / 1000) };
    this.creds.processedHistoryMessages = [...processed, notification];
    this.ev.emit('creds.update', { processedHistoryMessages: this.creds.processedHistoryMessages });
    this.ev.emit('messaging-history.set', {
      chats,
      contacts,
      messages: ordered,
      lidPnMappings,
      isLatest,
      progress: 100,
      syncType: proto.HistorySync.HistorySyncType.RECENT,
      chunkOrder: processed.length,
      peerDataRequestSessionId: null,
    });
  }

  /** The recipient's phone acknowledged a message Ponte sent. */
  receipt(id: string, status: 'delivered' | 'read'): void {
    if (!this.linked) throw new SandboxStateError('the instance is not connected');
    const sent = this.sentIndex.get(id);
    const remoteJid = sent?.key.remoteJid;
    if (!remoteJid) throw new SandboxUnknownMessageError(`id: no message ${id} was sent through this instance`);
    const value = status === 'read' ? proto.WebMessageInfo.Status.READ : proto.WebMessageInfo.Status.DELIVERY_ACK;
    this.ev.emit('messages.update', [{ key: { remoteJid, id, fromMe: true }, update: { status: value } }]);
  }

  /** WhatsApp's count of the number's new chats, as a live socket announces it (`message-capping.update`). */
  announceNewChatCap(info: { capping_status: string; cycle_end_timestamp: string; used_quota?: number; total_quota?: number }): void {
    if (this.closed) return;
    this.ev.emit('message-capping.update', info as BaileysEventMap['message-capping.update']);
  }

  disconnect(reason: SandboxDisconnect): void {
    this.end(closeError(SANDBOX_DISCONNECTS[reason], `sandbox: ${reason}`));
  }

  sendMessage: WaSocket['sendMessage'] = async (jid, content, options) => {
    if (!this.linked) throw closeError(428, 'Connection Closed');
    const id = options?.messageId ?? newWaMessageId();
    const user = jid.split('@')[0] ?? jid;
    const lockedUntil = this.sandbox.reachoutLockedUntil?.(this.options.instanceKey);
    const wrote = this.lastIncoming.get(jidNormalizedUser(jid));
    if (lockedUntil !== undefined && lockedUntil > Date.now() && (wrote === undefined || Date.now() - wrote > 24 * 3600_000)) return this.refuseForLimit(jid, id, lockedUntil);
    const entry = await outboxEntry(id, jid, content, options?.quoted?.key.id ?? undefined);
    let message: proto.IMessage = 'text' in content && typeof content.text === 'string' ? { conversation: content.text } : { conversation: entry.caption ?? `[${entry.type}]` };
    if ('poll' in content && content.poll) {
      // As Baileys builds it: the poll with the secret its votes are encrypted with (the caller's, else a new one).
      const p = content.poll;
      const secret = p.messageSecret ? Buffer.from(p.messageSecret) : randomBytes(32);
      const poll = { name: p.name, options: p.values.map((optionName) => ({ optionName })), selectableOptionsCount: p.selectableCount ?? 0 };
      message = { ...(p.selectableCount === 1 ? { pollCreationMessageV3: poll } : { pollCreationMessage: poll }), messageContextInfo: { messageSecret: secret } };
      // WhatsApp signs votes with the creator's LID when it has one (baileys.md §2.6).
      const me = this.creds.me;
      this.sandbox.onPoll?.(id, { secret, creatorJid: jidNormalizedUser(me?.lid ?? me?.id ?? '') }, this.options.instanceKey);
    }
    const msg = buildMessage({ fromMe: true, id, ...(jid.endsWith('@lid') ? { fromLid: user } : { fromPn: user }) }, message);
    msg.status = proto.WebMessageInfo.Status.SERVER_ACK;
    this.sentIndex.set(id, msg);
    if (entry.targetId) {
      const target = this.sentIndex.get(entry.targetId);
      if (target && entry.type === 'revoke') target.message = null;
    }
    this.sandbox.onConnection?.('send', this.serial, this.options.instanceKey, entry.id);
    this.sandbox.onSend?.(entry, this.options.instanceKey);
    // The echo of an own send, as a live socket delivers it.
    queueMicrotask(() => !this.closed && this.ev.emit('messages.upsert', { messages: [msg], type: 'append' }));
    return msg;
  };

  /**
   * As a live socket answers a send during the reach-out lock: the send
   * resolves, then the lock arrives (`connection.update` `reachoutTimeLock`)
   * and the error ack (`messages.update` status ERROR, stub ['463', text] as
   * rc14 emits it). The
   * message reaches no one (not in the outbox).
   */
  private refuseForLimit(jid: string, id: string, untilMs: number): Promise<WAMessage> {
    const msg = buildMessage({ fromMe: true, id, ...(jid.endsWith('@lid') ? { fromLid: jid.split('@')[0]! } : { fromPn: jid.split('@')[0]! }) }, { conversation: '' });
    msg.status = proto.WebMessageInfo.Status.PENDING;
    setTimeout(() => {
      if (this.closed) return;
      this.ev.emit('connection.update', { reachoutTimeLock: { isActive: true, timeEnforcementEnds: new Date(untilMs) } });
      this.ev.emit('messages.update', [{ key: { remoteJid: jid, id, fromMe: true }, update: { status: proto.WebMessageInfo.Status.ERROR, messageStubParameters: ['463', 'Your account has been restricted'] } }]);
    }, 20).unref();
    return Promise.resolve(msg);
  }

  /** Presence Ponte showed (`composing` before an agent message): the sandbox records it in the outbox as type `typing`. */
  sendPresenceUpdate(type: 'composing' | 'paused', jid: string): Promise<void> {
    if (type === 'composing') this.sandbox.onSend?.({ id: `typing-${newWaMessageId()}`, to: jid, type: 'typing', atMs: Date.now() }, this.options.instanceKey);
    return Promise.resolve();
  }

  downloadMedia(msg: WAMessage): Promise<Readable> {
    const content = msg.message ?? {};
    const node = content.imageMessage ?? content.videoMessage ?? content.audioMessage ?? content.documentMessage ?? content.stickerMessage;
    const sha = node?.directPath?.split('/').pop();
    const stream = sha ? this.sandbox.media?.open(sha) : undefined;
    if (!stream) return Promise.reject(Object.assign(new Error('media not found on the sandbox CDN'), { output: { statusCode: 410 } }));
    // Streamed in chunks, as a live download arrives.
    return Promise.resolve(stream);
  }

  /** Messages this socket marked read (the sandbox records their ids). */
  readonly readIds: string[] = [];

  readMessages(keys: WAMessageKey[]): Promise<void> {
    for (const k of keys) if (k.id) this.readIds.push(k.id);
    this.sandbox.onRead?.(keys.map((k) => k.id ?? '').filter((id) => id !== ''), this.options.instanceKey);
    return Promise.resolve();
  }

  groupSubject(jid: string): Promise<string | undefined> {
    return Promise.resolve(this.sandbox.groups?.get(jid));
  }

  /** Calls this socket declined (the sandbox records them). */
  readonly rejectedCalls: string[] = [];

  rejectCall(callId: string): Promise<void> {
    this.rejectedCalls.push(callId);
    return Promise.resolve();
  }

  /** A call rings and ends unanswered (`timeout`), or the caller hangs up first. */
  call(from: string, o: { id: string; video?: boolean; status: 'offer' | 'timeout' | 'reject' }): void {
    if (!this.linked) throw new SandboxStateError('the instance is not connected');
    this.ev.emit('call', [{ chatId: from, from, id: o.id, date: new Date(), isVideo: o.video ?? false, status: o.status, offline: false }]);
  }

  /** A group's subject changed on WhatsApp. */
  renameGroup(jid: string, subject: string): void {
    this.sandbox.groups?.set(jid, subject);
    this.ev.emit('groups.update', [{ id: jid, subject }]);
  }

  pnForLid(lidJid: string): Promise<string | undefined> {
    return Promise.resolve(this.sandbox.lids?.get(lidJid));
  }

  /**
   * As a live socket answers: every number is on WhatsApp unless listed in
   * `notOnWhatsApp` (in either form, for a Brazilian mobile). A Brazilian
   * mobile is registered in its canonical form, with the ninth digit: asked
   * in either form, it answers that JID (a real account registered before the
   * ninth digit answers the form without it; Ponte treats both as one person).
   */
  onWhatsApp(...numbers: string[]): Promise<Array<{ jid: string; exists: boolean }>> {
    return Promise.resolve(
      numbers.map((n) => {
        const digits = n.split('@')[0]!.replace(/\D/g, '');
        const registered = canonicalBrazilian(digits);
        const unknown = this.sandbox.notOnWhatsApp;
        const exists = !(unknown?.has(digits) || unknown?.has(registered) || brazilianVariants(digits).some((v) => unknown?.has(v)));
        return { jid: `${registered}@s.whatsapp.net`, exists };
      }),
    );
  }

  logout(): Promise<void> {
    this.end(closeError(401, 'Intentional Logout'));
    return Promise.resolve();
  }

  requestPairingCode(phoneDigits: string): Promise<string> {
    if (this.closed) return Promise.reject(closeError(428, 'Connection Closed'));
    const code = randomBytes(5).toString('hex').slice(0, 8).toUpperCase();
    this.creds.pairingCode = code;
    this.creds.me = { id: `${phoneDigits.replace(/\D/g, '')}@s.whatsapp.net`, name: '~' };
    this.ev.emit('creds.update', { pairingCode: code, me: this.creds.me });
    return Promise.resolve(code);
  }

  end(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.qrTimer) clearTimeout(this.qrTimer);
    if (this.opened) this.sandbox.onConnection?.('close', this.serial, this.options.instanceKey);
    this.ev.emit('connection.update', { connection: 'close', lastDisconnect: { error, date: new Date() } });
    this.ev.removeAllListeners('connection.update');
  }
}

/** A sandbox control call that does not fit the account's state (not linked, already linked, closed). */
export class SandboxStateError extends AppError {
  readonly code: string = 'SANDBOX_STATE';
}

/** A receipt for a message the sandbox never sent. */
export class SandboxUnknownMessageError extends SandboxStateError {
  override readonly code = 'SANDBOX_UNKNOWN_MESSAGE';
}

/** A stable fake LID for a phone number (sandbox accounts need one). */
export function lidOf(phoneDigits: string): string {
  const n = BigInt(`0x${createHash('sha256').update(phoneDigits).digest('hex').slice(0, 12)}`) % 10n ** 14n;
  return `2${n.toString().padStart(14, '0')}`;
}

/** The bytes of a media field as Baileys accepts it: a Buffer, or `{ url }` naming a local file. */
async function mediaBytes(media: unknown): Promise<Buffer | undefined> {
  if (Buffer.isBuffer(media)) return media;
  const url = (media as { url?: unknown } | null)?.url;
  if (typeof url === 'string' && !/^https?:/i.test(url)) return readFile(url);
  return undefined;
}

async function outboxEntry(id: string, to: string, content: AnyMessageContent, quotedId?: string): Promise<OutboxEntry> {
  const c = content as Record<string, unknown>;
  const entry: OutboxEntry = { id, to, type: 'text', atMs: Date.now(), ...(quotedId ? { quotedId } : {}) };
  if (typeof c.text === 'string') entry.text = c.text;
  for (const type of ['image', 'video', 'audio', 'document', 'sticker'] as const) {
    const media = c[type];
    if (media === undefined) continue;
    entry.type = type === 'audio' && c.ptt === true ? 'ptt' : type;
    const bytes = await mediaBytes(media);
    if (bytes) entry.mediaSha256 = createHash('sha256').update(bytes).digest('hex');
  }
  if (typeof c.caption === 'string') entry.caption = c.caption;
  if (typeof c.fileName === 'string') entry.fileName = c.fileName;
  if (typeof c.mimetype === 'string') entry.mimetype = c.mimetype;
  const poll = c.poll as { name?: unknown; values?: unknown } | undefined;
  if (poll && typeof poll === 'object') {
    entry.type = 'poll';
    entry.text = typeof poll.name === 'string' ? poll.name : '';
    entry.options = Array.isArray(poll.values) ? poll.values.filter((v): v is string => typeof v === 'string') : [];
  }
  if (c.delete && typeof c.delete === 'object') {
    entry.type = 'revoke';
    const id = (c.delete as { id?: unknown }).id;
    entry.targetId = typeof id === 'string' ? id : '';
  }
  if (c.react && typeof c.react === 'object') {
    entry.type = 'reaction';
    const react = c.react as { text?: unknown; key?: { id?: unknown } };
    entry.text = typeof react.text === 'string' ? react.text : '';
    entry.targetId = typeof react.key?.id === 'string' ? react.key.id : '';
  }
  return entry;
}

/** The sandbox driver's socket factory (`WHATSAPP_DRIVER=sandbox`). */
export function sandboxSocketFactory(sandbox: SandboxOptions & { onSocket?(socket: SandboxSocket, instanceKey: string): void } = {}): SocketFactory {
  return (options) => {
    const socket = new SandboxSocket(options, sandbox);
    sandbox.onSocket?.(socket, options.instanceKey);
    return socket;
  };
}
