/** One instance's WhatsApp session: the state machine of linking, connecting and reconnecting. */
import { EventEmitter } from 'node:events';
import { type CacheStore, type ConnectionState, jidNormalizedUser } from '@whiskeysockets/baileys';
import type { LRUCache } from 'lru-cache';
import { boundedCache } from '../lib/bounded-cache.js';
import type { ILogger } from '@whiskeysockets/baileys/lib/Utils/logger.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { AppError, coerceError } from '../lib/errors.js';
import type { SessionState } from '../model/session-state.js';
import type { Logger } from '../observability/logger.js';
import { type AuthFence, type AuthStore, AuthStoreKeyError, type InstanceAuth } from './auth-store.js';
import { type CloseDecision, decideOnClose } from './disconnect-policy.js';
import type { SocketFactory, SocketFactoryOptions, WaSocket } from './socket.js';

/**
 * One instance's WhatsApp session: a state machine over a socket factory
 * (Baileys or the sandbox), its auth store and its lease.
 *
 * States:
 * - `stopped`: no socket; the initial state, and after `stop()`.
 * - `waiting_lease`: another process holds the instance's lease; the lease is
 *   retried until it frees up, and no socket is opened meanwhile.
 * - `connecting`: a socket exists and has not opened yet.
 * - `awaiting_scan`: not linked; WhatsApp shows QR codes (`qr` events), at most
 *   `maxQrs` of them, after which the session goes to `qr_expired`.
 * - `open`: linked and connected; messages flow.
 * - `reconnecting`: the socket closed for a transient reason; a new one opens
 *   after backoff with jitter (or at once after 515).
 * - `qr_expired`: nobody scanned; stopped until an operator starts it again.
 * - `logged_out`: the phone unlinked this device (401); the auth state was
 *   cleared and the next start shows a QR.
 * - `halted`: WhatsApp closed it for a reason retrying cannot fix (440
 *   replaced, 403 forbidden, 405, 411); stopped with an alert.
 * - `passkey_required`: while linking, WhatsApp asked for a passkey, which
 *   Ponte cannot give (`passkey.ts`); the driver closed the socket, nothing was
 *   linked, and the session is stopped until an operator starts it again.
 *
 * Events: `state` (state, detail), `socket` (each new socket, to attach the
 * inbound binding), `qr` (qr, n), `open` (linked phone digits), `alert` (text
 * for the operator).
 */
export type { SessionState } from '../model/session-state.js';

export interface SessionEvents {
  state: [state: SessionState, detail: string | undefined];
  socket: [socket: WaSocket];
  qr: [qr: string, n: number];
  open: [phone: string | undefined];
  alert: [text: string];
}

export interface SessionOptions {
  instanceKey: string;
  factory: SocketFactory;
  /** `WHATSAPP_WS_URL`. */
  wsUrl: string;
  /** What this number sent, for recipients' retry receipts (see {@link SocketFactoryOptions.getMessage}). */
  getMessage: SocketFactoryOptions['getMessage'];
  auth: AuthStore;
  /** Made fresh per start: the guard of one socket per instance. */
  lease: LeaseLike;
  log: Logger;
  baileysLogger: ILogger;
  browser: [string, string, string];
  /** First delay of the transient-close backoff (`BAILEYS_RECONNECT_DELAY_MS`). */
  reconnectDelayMs: number;
  maxReconnectDelayMs?: number;
  /** QR codes shown before the session gives up (`BAILEYS_MAX_QR_SEND_ATTEMPTS`). */
  maxQrs: number;
  /** How often to retry a lease another process holds. */
  leaseRetryMs?: number;
}

/** The states a session rests in without a socket, from which `start()` begins again. */
const RESTARTABLE: ReadonlySet<SessionState> = new Set(['stopped', 'qr_expired', 'logged_out', 'halted', 'passkey_required']);

/** Closes with code 500 within this long after opening count as "right after connecting". */
const EARLY_CLOSE_MS = 30_000;
const EARLY_500_ALERT_AFTER = 3;

/** The lease a session runs under: exactly one process owns an instance at a time. */
export interface LeaseLike {
  /** Takes the lease, or says another owner holds it. */
  acquire(): Promise<boolean>;
  /** True while the lease is still this session's. */
  verify(): Promise<boolean>;
  release(): Promise<void>;
  readonly isHeld: boolean;
  /**
   * False once Redis has not confirmed the lease for long enough that it may
   * have expired (this process was paused): the socket is not used until a
   * renewal answers (absent: always trusted).
   */
  readonly trusted?: boolean;
  /** What an auth store that can check the lease atomically with a write checks (absent: writes are checked with `verify` only). */
  readonly fence?: AuthFence;
}

/** A pairing code was asked for while the session is not showing a QR. */
export class NotAwaitingScanError extends AppError {
  readonly code = 'NOT_AWAITING_SCAN';
}

export class WhatsAppSession extends EventEmitter<SessionEvents> {
  private _state: SessionState = 'stopped';
  private socket: WaSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private qrs = 0;
  private openedAt = 0;
  private early500s = 0;
  private pairingRequested = false;
  private _phone: string | undefined;
  private lastError: string | undefined;
  private generation = 0;
  private stopping = false;
  /** The loaded auth state, kept across reconnects (Baileys mutates it in place); dropped when cleared. */
  private auth: InstanceAuth | undefined;
  /** Credential writes in order; a reconnect waits for them. */
  private saving: Promise<void> = Promise.resolve();
  /** Baileys' retry counts per message, kept across this instance's sockets (bounded: counts matter for an hour). */
  private readonly retryCounters = lruCacheStore(boundedCache<string, NonNullable<unknown>>(10_000, { ttl: 3_600_000 }));

  constructor(private readonly options: SessionOptions) {
    super();
  }

  get state(): SessionState {
    return this._state;
  }

  /** Digits of the linked number, once known. */
  get phone(): string | undefined {
    return this._phone;
  }

  /** The socket to use, while the lease is surely this session's: a process that was paused past its lease sends nothing before it knows. */
  get currentSocket(): WaSocket | undefined {
    return this.options.lease.trusted === false ? undefined : this.socket;
  }

  get lastDisconnect(): string | undefined {
    return this.lastError;
  }

  get qrCount(): number {
    return this.qrs;
  }

  /** This number's own JIDs (phone number and LID, device suffixes dropped), once linked. */
  ownJids(): string[] {
    const me = this.socket?.user;
    return [me?.id, me?.lid].filter((j): j is string => Boolean(j)).map((j) => jidNormalizedUser(j));
  }

  private set(state: SessionState, detail?: string): void {
    if (this._state === state && detail === undefined) return;
    this._state = state;
    this.options.log.info({ state, detail }, 'session state');
    this.emit('state', state, detail);
  }

  /** Starts (or restarts) the session; a no-op while it is already running. */
  async start(): Promise<void> {
    if (!RESTARTABLE.has(this._state)) return;
    this.attempt = 0;
    this.qrs = 0;
    this.early500s = 0;
    this.auth = undefined;
    // A start that cannot connect (auth state unreadable, Redis away) is the session's own failure: retried, or halted with its reason.
    await this.connect().catch((err: unknown) => this.fail(err));
  }

  private async connect(): Promise<void> {
    const gen = ++this.generation;
    this.clearTimer();
    if (!(await this.options.lease.acquire())) {
      if (gen !== this.generation) return;
      this.set('waiting_lease', 'another process owns this instance');
      this.timer = setTimeout(() => void this.connect().catch((err: unknown) => this.fail(err)), this.options.leaseRetryMs ?? 5000);
      this.timer.unref();
      return;
    }
    if (gen !== this.generation) return;
    await this.saving;
    const auth = (this.auth ??= await this.options.auth.load(this.options.instanceKey, this.options.lease.fence));
    const { state } = auth;
    if (gen !== this.generation) return;
    this._phone = phoneOf(state.creds.me?.id);
    this.set('connecting');
    const socket = this.options.factory({
      instanceKey: this.options.instanceKey,
      auth: state,
      logger: this.options.baileysLogger,
      browser: this.options.browser,
      wsUrl: this.options.wsUrl,
      getMessage: this.options.getMessage,
      retryCounters: this.retryCounters,
    });
    this.socket = socket;
    socket.ev.on('creds.update', () => {
      // Never write auth state this process no longer owns.
      this.saving = this.saving
        .then(() => this.options.lease.verify())
        .then((mine) => (mine ? auth.saveCreds() : this.options.log.warn('lease lost: credentials not saved')))
        .catch((err: unknown) => this.options.log.error({ err: coerceError(err) }, 'could not save credentials'));
    });
    socket.ev.on('connection.update', (u) => this.onUpdate(socket, u));
    this.emit('socket', socket);
  }

  private onUpdate(socket: WaSocket, u: Partial<ConnectionState>): void {
    if (socket !== this.socket) return;
    if (u.qr) {
      this.qrs += 1;
      if (this.qrs > this.options.maxQrs) {
        this.options.log.info({ qrs: this.qrs - 1 }, 'QR codes exhausted without a scan');
        this.closeSocket();
        this.set('qr_expired', `no scan after ${this.options.maxQrs} QR codes`);
        void this.options.lease.release();
        return;
      }
      this.set('awaiting_scan');
      this.emit('qr', u.qr, this.qrs);
    }
    if (u.connection === 'open') {
      this.attempt = 0;
      this.qrs = 0;
      this.pairingRequested = false;
      this.openedAt = Date.now();
      this._phone = phoneOf(socket.user?.id) ?? this._phone;
      this.set('open');
      this.emit('open', this._phone);
    }
    if (u.connection === 'close') this.onClose(u.lastDisconnect?.error);
  }

  private onClose(error: Error | undefined): void {
    const decision = decideOnClose(error);
    this.lastError = decision.reason;
    this.socket = undefined;
    this.options.log.warn({ code: decision.code, action: decision.action, reason: decision.reason }, 'socket closed');
    void this.act(decision).catch((err: unknown) => this.fail(err));
  }

  private async act(d: CloseDecision): Promise<void> {
    const wasOpenRecently = this.openedAt > 0 && Date.now() - this.openedAt < EARLY_CLOSE_MS;
    if (this.pairingRequested && this._state !== 'open' && d.action !== 'reconnect_now') {
      // A pairing-code attempt that ended without a login leaves creds.me set;
      // reconnecting with them would log in and get 401 (baileys.md §1.6).
      this.pairingRequested = false;
      await this.saving;
      await this.options.auth.reset(this.options.instanceKey);
      this.auth = undefined;
    }
    switch (d.action) {
      case 'reconnect_now':
        this.set('reconnecting', d.reason);
        await this.connect();
        return;
      case 'reconnect_backoff': {
        if (d.code === 500 && wasOpenRecently) {
          this.early500s += 1;
          if (this.early500s === EARLY_500_ALERT_AFTER) {
            this.emit('alert', `WhatsApp keeps closing the session right after it opens (${d.reason}); the saved state may be damaged. Ponte keeps retrying and does not clear it.`);
          }
        } else if (d.code !== 500) this.early500s = 0;
        this.attempt += 1;
        const delay = backoffDelayMs(this.attempt, this.options.reconnectDelayMs, this.options.maxReconnectDelayMs ?? 60_000);
        this.set('reconnecting', `${d.reason}; retry in ${delay} ms`);
        const gen = this.generation;
        this.timer = setTimeout(() => {
          if (gen === this.generation) void this.connect().catch((err: unknown) => this.fail(err));
        }, delay);
        this.timer.unref();
        return;
      }
      case 'logged_out':
        await this.saving;
        await this.options.auth.remove(this.options.instanceKey);
        this.auth = undefined;
        await this.options.lease.release();
        this._phone = undefined;
        this.set('logged_out', d.reason);
        this.emit('alert', 'The phone unlinked this number from Ponte. Link it again to resume.');
        return;
      case 'qr_expired':
        await this.options.lease.release();
        this.set('qr_expired', d.reason);
        return;
      case 'stop_alert':
        await this.options.lease.release();
        this.set('halted', d.reason);
        this.emit('alert', alertText(d));
        return;
      case 'passkey_required':
        // The link never completed: credentials that name a number (set by a
        // pairing-code request, or by a pair-success before the demand) would
        // make the next attempt log in and get 401, so they go; fresh ones
        // without a number are kept as they are.
        await this.saving;
        if (this.auth?.state.creds.me?.id) {
          await this.options.auth.reset(this.options.instanceKey);
          this.auth = undefined;
        }
        await this.options.lease.release();
        this._phone = undefined;
        this.set('passkey_required', d.reason);
        return;
    }
  }

  /** Asks for a pairing code for `phoneDigits` (instead of a QR); the session must be awaiting a scan. */
  async requestPairingCode(phoneDigits: string): Promise<string> {
    if (!this.socket || this._state !== 'awaiting_scan') throw new NotAwaitingScanError(`instance ${this.options.instanceKey} is not waiting to be linked (state ${this._state})`);
    this.pairingRequested = true;
    return this.socket.requestPairingCode(phoneDigits);
  }

  /** Closes the socket (never unlinking the phone) and releases the lease. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.generation += 1;
    this.clearTimer();
    this.closeSocket();
    await this.saving;
    if (this.options.lease.isHeld) await this.options.lease.release();
    this.set('stopped');
    this.stopping = false;
  }

  /** Unlinks the phone (when connected) and deletes the auth state. */
  async logout(): Promise<void> {
    this.generation += 1;
    this.clearTimer();
    const socket = this.socket;
    this.socket = undefined;
    if (socket && this._state === 'open') await socket.logout().catch((err: unknown) => this.options.log.warn({ err: coerceError(err) }, 'logout failed'));
    if (socket) await Promise.resolve(socket.end(undefined)).catch(() => undefined);
    await this.saving;
    await this.options.auth.remove(this.options.instanceKey);
    this.auth = undefined;
    if (this.options.lease.isHeld) await this.options.lease.release();
    this._phone = undefined;
    this.set('logged_out', 'logged out by an operator');
  }

  /** The lease was lost to another process: close at once, without writing anything more. */
  leaseLost(): void {
    // A session being stopped is replaced on purpose: no alert.
    if (this.stopping) return;
    this.generation += 1;
    this.clearTimer();
    this.closeSocket();
    this.set('halted', 'lease lost to another process');
    this.emit('alert', 'Another Ponte process took over this number; this one stopped its connection.');
  }

  private closeSocket(): void {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) void Promise.resolve(socket.end(undefined)).catch(() => undefined);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fail(err: unknown): void {
    this.options.log.error({ err: coerceError(err) }, 'session error');
    if (err instanceof AuthStoreKeyError) {
      // Stored state this configuration cannot read: retrying cannot help, and a fresh login would unlink nothing but lose the session.
      this.lastError = err.message;
      this.set('halted', err.message);
      return;
    }
    this.attempt += 1;
    const delay = backoffDelayMs(this.attempt, this.options.reconnectDelayMs, this.options.maxReconnectDelayMs ?? 60_000);
    this.set('reconnecting', `error: ${coerceError(err).message}; retry in ${delay} ms`);
    const gen = this.generation;
    this.timer = setTimeout(() => {
      if (gen === this.generation) void this.connect().catch((e: unknown) => this.fail(e));
    }, delay);
    this.timer.unref();
  }
}

function phoneOf(jid: string | undefined | null): string | undefined {
  if (!jid) return undefined;
  const user = jid.split('@')[0]?.split(':')[0];
  return user && /^\d+$/.test(user) ? user : undefined;
}

function alertText(d: CloseDecision): string {
  switch (d.code) {
    case 440:
      return 'WhatsApp says another session replaced this one (440). Ponte stopped this number instead of fighting it; check that no other bridge uses it, then start it again.';
    case 403:
      return 'WhatsApp refused this number (403): it may be banned or blocked. Ponte stopped it.';
    case 405:
      return 'WhatsApp rejected this client version (405). Update Ponte, then start the number again.';
    default:
      return `WhatsApp closed the session (${d.reason}). Ponte stopped it; link it again.`;
  }
}

/** Baileys' cache interface over an LRU cache. */
function lruCacheStore(cache: LRUCache<string, NonNullable<unknown>>): CacheStore {
  return {
    get: <T>(key: string) => cache.get(key) as T | undefined,
    set: <T>(key: string, value: T) => {
      if (value === undefined || value === null) cache.delete(key);
      else cache.set(key, value);
    },
    del: (key: string) => cache.delete(key),
    flushAll: () => cache.clear(),
  };
}
