/** The socket interface both drivers implement: the part of a Baileys socket Ponte uses. */
import type {
  AnyMessageContent,
  AuthenticationState,
  CacheStore,
  BaileysEventEmitter,
  Contact,
  MiscMessageGenerationOptions,
  WAMessage,
  WAMessageKey,
  proto,
} from '@whiskeysockets/baileys';
import type { Readable } from 'node:stream';
import type { ILogger } from '@whiskeysockets/baileys/lib/Utils/logger.js';

/**
 * The part of a Baileys socket Ponte uses. A live socket (`makeWASocket`)
 * and the sandbox socket both implement it, so everything after the socket
 * (sessions, queues, delivery) is one code path whatever the driver.
 */
export interface WaSocket {
  /** Baileys' event emitter: `connection.update`, `creds.update`, `messages.upsert`, `messages.update`, … */
  readonly ev: BaileysEventEmitter;
  readonly user: Contact | undefined;
  sendMessage(jid: string, content: AnyMessageContent, options?: MiscMessageGenerationOptions): Promise<WAMessage | undefined>;
  /** Closes the connection without unlinking the phone (never `logout()` on shutdown). */
  end(error: Error | undefined): Promise<void> | void;
  /** Unlinks this device from the phone (an operator's explicit logout only). */
  logout(msg?: string): Promise<void>;
  /** The decrypted bytes of a media message as a stream (re-requesting expired media from the phone when needed). */
  downloadMedia(msg: WAMessage): Promise<Readable>;
  /** Sends read receipts (blue ticks) for these messages. */
  readMessages(keys: WAMessageKey[]): Promise<void>;
  /** A group's subject (its name on WhatsApp). */
  groupSubject(jid: string): Promise<string | undefined>;
  /** Shows "typing…" (`composing`) or stops it (`paused`) in a chat. */
  sendPresenceUpdate(type: 'composing' | 'paused', jid: string): Promise<void>;
  /** Declines an incoming call. */
  rejectCall(callId: string, from: string): Promise<void>;
  /** The phone-number JID WhatsApp has told this number for a LID (device suffix dropped), when it knows one. */
  pnForLid(lidJid: string): Promise<string | undefined>;
  /** Which of these numbers (digits or JIDs) are on WhatsApp, with the JID to use. */
  onWhatsApp(...numbers: string[]): Promise<Array<{ jid: string; exists: boolean }>>;
  /**
   * Asks the phone for up to `count` messages of a chat older than
   * `oldestKey` (history on demand); the phone answers later, with a
   * `messaging-history.set`. Absent where the driver has no phone to ask.
   */
  fetchMessageHistory?(count: number, oldestKey: WAMessageKey, oldestTimestampMs: number): Promise<string>;
  /** Asks WhatsApp for an 8-character pairing code for `phoneDigits` (only once connected). */
  requestPairingCode(phoneDigits: string): Promise<string>;
}

export interface SocketFactoryOptions {
  instanceKey: string;
  auth: AuthenticationState;
  /** The WebSocket URL to connect to (`WHATSAPP_WS_URL`); the sandbox ignores it. */
  wsUrl: string;
  /**
   * A message this number sent, by WhatsApp id, for a recipient's retry
   * receipt (their phone could not decrypt it): Baileys keeps recent sends in
   * memory only, so after a restart this is where the message comes from.
   */
  getMessage(key: WAMessageKey): Promise<proto.IMessage | undefined>;
  /** Retry counts per message, kept across reconnects of the instance. */
  retryCounters: CacheStore;
  /** The instance's Baileys logger (`BAILEYS_LOG_LEVEL_INSTANCE`). */
  logger: ILogger;
  /** `[platform, browser, version]` as Baileys expects it (`BAILEYS_BROWSER_NAME`). */
  browser: [string, string, string];
}

/** Opens one socket for one instance: the Baileys driver or the sandbox driver (`WHATSAPP_DRIVER`). */
export type SocketFactory = (options: SocketFactoryOptions) => WaSocket;
