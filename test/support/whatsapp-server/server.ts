/**
 * The loopback WhatsApp server: a websocket endpoint (`ws://127.0.0.1:<port>/ws/chat`)
 * that an unmodified rc14 `makeWASocket({ waWebSocketUrl })` links and logs
 * in to, with simulated peers, linked accounts and a media host behind it.
 *
 * What a connection goes through:
 * - registration (no creds): `pair-device` refs → QRs; the phone links it by
 *   `scanQr` or by a pairing code (`enterPairingCode`) → `pair-success` →
 *   the client answers `pair-device-sign` → `<stream:error code=515>`;
 * - login (creds): `<success>` (or `<failure reason=401>` for a device the
 *   phone does not know) → pre-key count/upload, `passive active` → queued
 *   offline stanzas and `<ib><offline count=N>` → online; at the first login
 *   after pairing the phone then sends its history (`history.ts`), and rc14
 *   answers it with an app-state sync (`w:sync:app:state`) before it flushes
 *   the events it held back;
 * - online: iqs answered (`iq.ts`), `<message>`s acked and decrypted by the
 *   devices they are for, receipts handed to the peer they address.
 * A second login of the same device replaces the first (`conflict`, 440).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Curve, type KeyPair } from '@whiskeysockets/baileys';
import type { BinaryNode } from '@whiskeysockets/baileys';
import { WebSocketServer } from 'ws';
import { type CompanionDevice, type CompanionKeys, deriveLid, LinkedAccount } from './account.js';
import { child, node, readUIntBE, unixSeconds } from './binary-node.js';
import { ClientConnection } from './connection.js';
import { Directory } from './directory.js';
import { type AccountHistory, sendHistory } from './history.js';
import { Inbox } from './inbox.js';
import { answerInfoIq, IqError } from './iq.js';
import { type LinkOptions, Linking } from './linking.js';
import { MediaHost } from './media-host.js';
import { ServerNoise } from './noise.js';
import type { PasskeyRequest } from './passkey.js';
import { type PeerNetwork, SimulatedPeer } from './peer.js';
import { routeClientMessage, routeClientReceipt } from './routing.js';
import { issueNoiseCertChain } from './test-root.js';
import type { IdentityOptions } from './types.js';

export interface WhatsAppServerOptions {
  /** `pair-device` refs a registering client gets; each is shown as one QR. Default 6. */
  qrRefs?: number;
  /** Privacy settings (`<iq xmlns=privacy>`), category → value. Default all `all`, so mark-read sends `read`. */
  privacy?: Record<string, string>;
  /** Send queued stanzas and `<ib><offline count=N>` when a client goes `passive active` after login. Default true. */
  autoOffline?: boolean;
  /** Send `<stream:error code=515>` once a new companion confirms its pairing, as WhatsApp does. Default true. */
  restartAfterPairing?: boolean;
  /**
   * Have the phone send history to each new companion at its first login, as
   * WhatsApp does. Default true. With false, rc14 (when it processes RECENT
   * history) holds its events for 20 s after that login, waiting for history.
   */
  history?: boolean;
}

/** Something the server could not do with what a client sent; kept in `server.errors`. */
export interface ServerError {
  connection: number;
  error: unknown;
}

const DEFAULT_PRIVACY = { readreceipts: 'all', last: 'all', online: 'all', profile: 'all', status: 'all', groupadd: 'all', calladd: 'all' };

const digits = (phone: string) => phone.replace(/^\+/, '');

export class WhatsAppServer implements PeerNetwork {
  readonly directory = new Directory();
  readonly connections: ClientConnection[] = [];
  /** Decryption and protocol errors; a clean run leaves this empty. */
  readonly errors: ServerError[] = [];
  /** Registering connections, once their `pair-device` refs are sent. */
  readonly registrations = new Inbox<ClientConnection>('registrations');
  /** Logged-in connections, once they are online (offline stanzas delivered). */
  readonly logins = new Inbox<ClientConnection>('logins');
  private readonly options: Required<WhatsAppServerOptions>;
  private readonly staticKey: KeyPair = Curve.generateKeyPair();
  /** The `CertChain` every ServerHello carries (root: `TEST_ROOT_PUBLIC_KEY`). */
  readonly certChain: Uint8Array = issueNoiseCertChain(this.staticKey.public);
  private readonly online = new WeakSet<ClientConnection>();
  private readonly linking: Linking;
  private nextConnectionId = 1;
  private nextTag = 1;
  /** `<from phone>><to phone>` → the error code its messages are refused with (`refuseMessages`). */
  private readonly refusals = new Map<string, string>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly http: http.Server,
    private readonly wss: WebSocketServer,
    readonly media: MediaHost,
    options: WhatsAppServerOptions,
  ) {
    this.options = {
      qrRefs: options.qrRefs ?? 6,
      privacy: options.privacy ?? DEFAULT_PRIVACY,
      autoOffline: options.autoOffline ?? true,
      restartAfterPairing: options.restartAfterPairing ?? true,
      history: options.history ?? true,
    };
    this.linking = new Linking({
      connections: this.connections,
      ensureAccount: (identity) => this.ensureAccount(identity),
      tag: () => this.tag(),
      restartAfterPairing: this.options.restartAfterPairing,
    });
    wss.on('connection', (ws) => {
      const conn = new ClientConnection(this.nextConnectionId++, ws, new ServerNoise(this.staticKey, this.certChain), {
        onHandshake: (c) => this.onHandshake(c),
        onNode: (c, stanza) => this.onNode(c, stanza),
        onClose: (c) => this.onClose(c),
        onError: (c, error) => this.recordError(c.id, error),
      });
      this.connections.push(conn);
    });
    wss.on('error', (error) => this.recordError(0, error));
    http.on('error', (error) => this.recordError(0, error));
  }

  /** Starts a server on a free loopback port. */
  static async start(options: WhatsAppServerOptions = {}): Promise<WhatsAppServer> {
    const media = await MediaHost.start();
    const server = http.createServer((_req, res) => res.writeHead(426).end());
    const wss = new WebSocketServer({ server, path: '/ws/chat' });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const whatsapp = new WhatsAppServer(server, wss, media, options);
    media.onError = (error) => whatsapp.recordError(0, error);
    return whatsapp;
  }

  /** The server's static Noise public key (the leaf of `certChain`). */
  get noisePublicKey(): Uint8Array {
    return this.staticKey.public;
  }

  /** The URL to give `makeWASocket` as `waWebSocketUrl`. */
  get url(): string {
    return `ws://127.0.0.1:${(this.http.address() as AddressInfo).port}/ws/chat`;
  }

  /** Adds a contact with its own phone and Signal state. */
  addPeer(identity: IdentityOptions): SimulatedPeer {
    const phone = digits(identity.phone);
    const peer = new SimulatedPeer(this, phone, identity.lid ?? deriveLid(phone), identity.pushName ?? `Peer ${phone.slice(-4)}`);
    this.directory.addPeer(peer);
    return peer;
  }

  account(phone: string): LinkedAccount | undefined {
    return this.directory.accountByPhone(digits(phone));
  }

  resolveAccount(to: string | LinkedAccount): LinkedAccount {
    if (to instanceof LinkedAccount) return to;
    const user = to.includes('@') ? this.directory.lookup(to) : this.directory.lookupPhone(to);
    if (user?.kind !== 'account') throw new Error(`no linked account ${to} on the server`);
    return user.account;
  }

  /**
   * The phone scans a QR the client showed: checks it against the
   * connection that got its ref, signs the companion identity with the QR's
   * ADV secret and sends `pair-success`. Resolves when the client confirms;
   * rejects with `PasskeyRequiredError` when the link demands a passkey.
   */
  scanQr(qr: string, identity: IdentityOptions, options?: LinkOptions): Promise<CompanionDevice> {
    return this.linking.scanQr(qr, identity, options);
  }

  /**
   * The user types the client's pairing code on the phone. Answers the
   * oldest pending `requestPairingCode` (of `phone`, when given; waiting for
   * one to arrive) with the phone's `primary_hello`; resolves when the client
   * confirms the pairing, rejects when the code was wrong or (with
   * `PasskeyRequiredError`, after `companion_finish`) when the link demands a passkey.
   */
  enterPairingCode(code: string, identity: Partial<IdentityOptions> = {}, options?: LinkOptions): Promise<CompanionDevice> {
    return this.linking.enterPairingCode(code, identity, options);
  }

  /**
   * From now on (or, with `required: false`, no longer) WhatsApp asks for a
   * passkey whenever a device is linked to `phone`, as it does for some
   * numbers since mid-2026: see `LinkOptions.passkey`.
   */
  requirePasskey(phone: string, required = true): void {
    if (required) this.linking.passkeyPhones.add(digits(phone));
    else this.linking.passkeyPhones.delete(digits(phone));
  }

  /** Passkey ceremonies the server asked registering companions for (`passkey_prologue_request`). */
  get passkeyRequests(): Inbox<PasskeyRequest> {
    return this.linking.passkeyRequests;
  }

  /** What the phone sends a new companion of an account with no `history` of its own: every peer on the server as a contact, with its push name. */
  defaultHistory(): AccountHistory {
    const peers = this.directory.peers;
    return { contacts: [...peers], pushNames: peers.map((p) => ({ id: p.lidJid, pushname: p.pushName })) };
  }

  /**
   * WhatsApp's `companion_reg_refresh` (Baileys #2737): tells the client
   * showing `qr` to make a new ADV secret; from now on the phone refuses QRs
   * that carry the old one. rc14 ignores the notification, so without a
   * bridge-side fix its QRs stay unscannable.
   */
  refreshCompanionRegistration(qr: string): void {
    this.linking.refreshCompanionRegistration(qr);
  }

  /** Pairing-code requests (`companion_hello`), waiting for `enterPairingCode`. */
  get pairingCodeRequests(): Linking['pairingCodeRequests'] {
    return this.linking.pairingCodeRequests;
  }

  /** Companions whose pairing the client confirmed (`pair-device-sign`). */
  get pairings(): Inbox<CompanionDevice> {
    return this.linking.pairings;
  }

  /** The phone removes a linked device: its live connection gets `<failure reason=401>`, and so does every later login. */
  unlink(companion: CompanionDevice): void {
    companion.linked = false;
    companion.connection?.failure(401);
  }

  /** The live, logged-in connection of an account (its most recent companion's). */
  liveConnection(phone: string): ClientConnection {
    const conn = this.account(phone)
      ?.linkedCompanions()
      .map((c) => c.connection)
      .filter((c): c is ClientConnection => c?.state === 'open')
      .at(-1);
    if (!conn) throw new Error(`account ${phone} has no live connection`);
    return conn;
  }

  /**
   * From now on, each message `phone`'s companions send to `to` (a phone
   * number) is answered with `<ack class="message" error="<code>">` and
   * reaches no one, as WhatsApp refuses a send (463: the reach-out lock, 479:
   * a stanza that did not validate). `undefined` ends it.
   */
  refuseMessages(phone: string, to: string, code: string | undefined): void {
    const key = `${digits(phone)}>${digits(to)}`;
    if (code === undefined) this.refusals.delete(key);
    else this.refusals.set(key, code);
  }

  /**
   * Sends `<notification type="mex">` with `<update op_name>` and `data` as its
   * JSON payload to the live connection of `phone`, as WhatsApp announces
   * account state (`NotificationUserReachoutTimelockUpdate`, `MessageCappingInfoNotification`).
   */
  notifyMex(phone: string, opName: string, data: Record<string, unknown>): void {
    this.liveConnection(phone).send(
      node('notification', { from: 's.whatsapp.net', type: 'mex', id: this.tag(), t: unixSeconds() }, [node('update', { op_name: opName }, Buffer.from(JSON.stringify({ data })))]),
    );
  }

  /** Sends queued stanzas and `<ib><offline count=N>` to a logged-in connection (done by itself unless `autoOffline: false`). */
  goOnline(conn: ClientConnection): void {
    const companion = conn.companion;
    if (!companion || this.online.has(conn) || conn.state !== 'open') return;
    const queued = companion.offlineQueue.splice(0);
    for (const stanza of queued) conn.send({ ...stanza, attrs: { ...stanza.attrs, offline: '1' } });
    conn.send(node('ib', { from: 's.whatsapp.net' }, [node('offline', { count: String(queued.length) })]));
    this.online.add(conn);
    this.logins.push(conn);
    if (companion.historyPending) void this.sendHistory(conn, companion);
  }

  deliver(companion: CompanionDevice, stanza: BinaryNode): void {
    const conn = companion.connection;
    if (conn && conn.state === 'open' && this.online.has(conn)) conn.send(stanza);
    else companion.offlineQueue.push(stanza);
  }

  /** Ends every connection and stops the websocket and media hosts. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const c of this.connections) c.terminate();
      await new Promise<void>((resolve) => this.wss.close(() => resolve()));
      await new Promise<void>((resolve) => {
        this.http.close(() => resolve());
        this.http.closeAllConnections();
      });
      await this.media.close();
      for (const p of this.directory.peers) p.close();
      for (const a of this.directory.accounts) a.close();
      for (const inbox of [this.registrations, this.logins]) inbox.close();
      this.linking.close();
      // libuv frees closed handles in a loop iteration's close phase: this one's,
      // or the next one's when close() ran inside a close callback. Two chained
      // setImmediates resume after both, so no listener outlives close().
      for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    })();
    return this.closing;
  }

  /** The phone's history for a companion's first login: after `<ib><offline>`, as rc14 only waits for it from then on. */
  private async sendHistory(conn: ClientConnection, companion: CompanionDevice): Promise<void> {
    companion.historyPending = false;
    const configured = companion.account.history;
    if (!this.options.history || configured === false) return;
    try {
      await sendHistory(companion, configured ?? this.defaultHistory(), this.media, (stanza) => this.deliver(companion, stanza));
    } catch (error) {
      this.recordError(conn.id, error);
    }
  }

  private recordError(connection: number, error: unknown): void {
    // A client vanishing mid-write is not a protocol error.
    const code = (error as { code?: unknown } | undefined)?.code;
    if (code === 'ECONNRESET' || code === 'EPIPE') return;
    this.errors.push({ connection, error });
  }

  private tag(): string {
    return `srv-${this.nextTag++}`;
  }

  private ensureAccount(identity: IdentityOptions): LinkedAccount {
    const phone = digits(identity.phone);
    const existing = this.directory.accountByPhone(phone);
    if (existing) return existing;
    const account = new LinkedAccount(phone, identity.lid ?? deriveLid(phone));
    this.directory.addAccount(account);
    return account;
  }

  private onHandshake(conn: ClientConnection): void {
    const pairing = conn.payload?.devicePairingData;
    if (pairing) return this.onRegistration(conn, pairing);
    const phone = String(conn.payload?.username ?? '');
    const companion = this.directory.accountByPhone(phone)?.companions.get(conn.payload?.device ?? -1);
    if (!companion?.linked) return conn.failure(401);
    companion.connection?.conflict('replaced');
    companion.connection = conn;
    conn.companion = companion;
    conn.send(node('success', { t: unixSeconds(), lid: companion.lidJid, location: 'loopback' }));
  }

  private onRegistration(conn: ClientConnection, pairing: NonNullable<NonNullable<ClientConnection['payload']>['devicePairingData']>): void {
    const need = (b: Uint8Array | null | undefined, what: string) => {
      if (!b) throw new Error(`registration without ${what}`);
      return Buffer.from(b);
    };
    const keys: CompanionKeys = {
      registrationId: readUIntBE(need(pairing.eRegid, 'eRegid')),
      identityKey: need(pairing.eIdent, 'eIdent'),
      signedPreKey: { keyId: readUIntBE(need(pairing.eSkeyId, 'eSkeyId')), publicKey: need(pairing.eSkeyVal, 'eSkeyVal'), signature: need(pairing.eSkeySig, 'eSkeySig') },
    };
    conn.registration = keys;
    conn.qrRefs = Array.from({ length: this.options.qrRefs }, () => `2@${randomBytes(24).toString('base64')}`);
    conn.send(
      node('iq', { from: 's.whatsapp.net', type: 'set', id: this.tag(), xmlns: 'md' }, [
        node('pair-device', {}, conn.qrRefs.map((ref) => node('ref', {}, Buffer.from(ref)))),
      ]),
    );
    this.registrations.push(conn);
  }

  private onClose(conn: ClientConnection): void {
    if (conn.companion?.connection === conn) conn.companion.connection = undefined;
    this.linking.onClose(conn);
  }

  private async onNode(conn: ClientConnection, stanza: BinaryNode): Promise<void> {
    if (stanza.tag === 'iq') this.onIq(conn, stanza);
    else if (stanza.tag === 'message') await this.onClientMessage(conn, stanza);
    else if (stanza.tag === 'receipt') this.onClientReceipt(conn, stanza);
    // ack, presence, chatstate, ib (unified_session), call: nothing to answer.
  }

  private onIq(conn: ClientConnection, iq: BinaryNode): void {
    const { type, xmlns, id } = iq.attrs;
    if (type === 'result' || type === 'error') {
      if (child(iq, 'pair-device-sign')) this.linking.onPairDeviceSign(conn);
      return;
    }
    const result = (content?: BinaryNode[]) => node('iq', { from: 's.whatsapp.net', type: 'result', id }, content);
    try {
      if (xmlns === 'md' && child(iq, 'link_code_companion_reg')) return this.linking.onLinkCodeIq(conn, iq);
      if (xmlns === 'md' && child(iq, 'remove-companion-device')) this.onRemoveCompanion(conn, iq);
      conn.send(result(answerInfoIq(iq, { directory: this.directory, media: this.media, companion: conn.companion, privacy: this.options.privacy })));
    } catch (err) {
      const status = err instanceof IqError ? err.status : 500;
      if (!(err instanceof IqError)) this.recordError(conn.id, err);
      conn.send(node('iq', { from: 's.whatsapp.net', type: 'error', id }, [node('error', { code: String(status), text: err instanceof Error ? err.message : 'error' })]));
      return;
    }
    if (xmlns === 'passive' && child(iq, 'active') && this.options.autoOffline) this.goOnline(conn);
  }

  /** `sock.logout()`: the companion unlinks itself, so its later logins get 401. */
  private onRemoveCompanion(conn: ClientConnection, iq: BinaryNode): void {
    const jid = child(iq, 'remove-companion-device')?.attrs.jid;
    const companion = conn.companion;
    if (companion && jid === companion.pnJid) companion.linked = false;
  }

  /** The phone number behind a JID, PN or LID, of someone on the server. */
  private phoneOf(jid: string | undefined): string | undefined {
    const who = this.directory.lookup(jid);
    return who?.kind === 'account' ? who.account.phone : who?.kind === 'peer' ? who.peer.phone : undefined;
  }

  private async onClientMessage(conn: ClientConnection, stanza: BinaryNode): Promise<void> {
    const refusal = conn.companion ? this.refusals.get(`${conn.companion.account.phone}>${this.phoneOf(stanza.attrs.to)}`) : undefined;
    conn.send(node('ack', { class: 'message', id: stanza.attrs.id, from: stanza.attrs.to, t: unixSeconds(), ...(refusal ? { error: refusal } : {}) }));
    if (!conn.companion || refusal) return;
    for (const error of await routeClientMessage(this.directory, conn.companion, stanza)) this.recordError(conn.id, error);
  }

  private onClientReceipt(conn: ClientConnection, stanza: BinaryNode): void {
    const { id, to, type } = stanza.attrs;
    conn.send(node('ack', { class: 'receipt', id, from: to, type }));
    if (conn.companion) routeClientReceipt(this.directory, conn.companion, stanza);
  }
}

/** Starts a loopback WhatsApp server (see `WhatsAppServer`). */
export function startWhatsAppServer(options?: WhatsAppServerOptions): Promise<WhatsAppServer> {
  return WhatsAppServer.start(options);
}
