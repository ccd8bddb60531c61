/**
 * One client websocket on the loopback server. States:
 *
 * - `handshake`: Noise XX in progress (ClientHello → ServerHello → ClientFinish);
 * - `open`: transport keys in place; stanzas flow both ways;
 * - `ending`: the server sent `<failure>` or `<stream:error>` and waits for
 *   the client to close (closing at once could race the client reading it);
 * - `closed`: the websocket is gone.
 *
 * Frames are handled one at a time, in order; what they mean is the
 * server's business (`ConnectionHandlers`).
 */
import { decodeBinaryNode, encodeBinaryNode, type proto } from '@whiskeysockets/baileys';
import type { BinaryNode } from '@whiskeysockets/baileys';
import type { RawData, WebSocket } from 'ws';
import type { CompanionDevice, CompanionKeys } from './account.js';
import { node } from './binary-node.js';
import { Inbox } from './inbox.js';
import { frame, FrameReader, type ServerNoise } from './noise.js';
import type { PairingCodeExchange } from './pairing.js';

export type ConnectionState = 'handshake' | 'open' | 'ending' | 'closed';

export interface ConnectionHandlers {
  /** The client finished the handshake; `payload` says whether it registers or logs in. */
  onHandshake(conn: ClientConnection): void;
  onNode(conn: ClientConnection, stanza: BinaryNode): Promise<void>;
  onClose(conn: ClientConnection): void;
  onError(conn: ClientConnection, err: unknown): void;
}

/** A pairing-code request (`link_code_companion_reg`, stage `companion_hello`) waiting for the phone. */
export interface PendingLinkCode {
  phone: string;
  ref: string;
  wrappedCompanionEphemeral: Buffer;
  exchange?: PairingCodeExchange;
}

function toBuffer(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.isBuffer(data) ? data : Buffer.from(data);
}

export class ClientConnection {
  state: ConnectionState = 'handshake';
  /** The ClientPayload: registration (`devicePairingData`) or login (`username`, `device`). */
  payload: proto.ClientPayload | undefined;
  /** The client's static Noise key. */
  clientStaticKey: Buffer | undefined;
  /** For a registration: the keys it registers with (from `devicePairingData`). */
  registration: CompanionKeys | undefined;
  /** For a registration: the `pair-device` refs the server sent (each becomes one QR). */
  qrRefs: string[] = [];
  /** For a registration: ADV secrets (base64) that `companion_reg_refresh` retired. */
  readonly retiredAdvSecrets = new Set<string>();
  /** For a registration: a pairing-code request in progress. */
  linkCode: PendingLinkCode | undefined;
  /** For a registration: the companion that `pair-success` announced. */
  pairingCompanion: CompanionDevice | undefined;
  /** For a login: the linked device it logged in as. */
  companion: CompanionDevice | undefined;
  /** Every stanza received, in order (for assertions and debugging). */
  readonly received: BinaryNode[] = [];
  /** The `<ack>`s the client sent (for notifications, receipts, …), to wait on. */
  readonly acks = new Inbox<BinaryNode>('acks');
  private readonly reader = new FrameReader();
  private chain: Promise<void> = Promise.resolve();
  private sentHello = false;

  constructor(
    readonly id: number,
    private readonly ws: WebSocket,
    private readonly noise: ServerNoise,
    private readonly handlers: ConnectionHandlers,
  ) {
    ws.on('message', (data) => {
      for (const f of this.readFrames(data)) this.chain = this.chain.then(() => this.onFrame(f)).catch((err: unknown) => handlers.onError(this, err));
    });
    ws.on('close', () => {
      this.state = 'closed';
      this.acks.close();
      handlers.onClose(this);
    });
    ws.on('error', (err) => handlers.onError(this, err));
  }

  get isRegistration(): boolean {
    return Boolean(this.payload?.devicePairingData);
  }

  send(stanza: BinaryNode): void {
    if (this.state !== 'open' && this.state !== 'ending') throw new Error(`connection ${this.id} cannot send in state ${this.state}`);
    this.ws.send(frame(this.noise.encrypt(encodeBinaryNode(stanza))));
  }

  /** `<failure reason=…>`: rc14 closes with that status (401 = logged out). */
  failure(reason: number): void {
    this.end(node('failure', { reason: String(reason), location: 'loopback' }));
  }

  /** `<stream:error code=…>`: rc14 closes with that status (515 = restart required, 503 = unavailable). */
  streamError(code: number): void {
    this.end(node('stream:error', { code: String(code) }));
  }

  /** `<stream:error><conflict type=…>`: rc14 closes with 440 (connection replaced). */
  conflict(type = 'replaced'): void {
    this.end(node('stream:error', {}, [node('conflict', { type })]));
  }

  /** Drops the websocket without a word (rc14 closes with 428). */
  terminate(): void {
    this.ws.terminate();
  }

  private end(stanza: BinaryNode): void {
    if (this.state !== 'open') return;
    this.send(stanza);
    this.state = 'ending';
  }

  private readFrames(data: RawData): Buffer[] {
    try {
      return this.reader.push(toBuffer(data));
    } catch (err) {
      this.handlers.onError(this, err);
      this.ws.terminate();
      return [];
    }
  }

  private async onFrame(bytes: Buffer): Promise<void> {
    if (this.state === 'closed') return;
    if (this.state === 'handshake') return this.onHandshakeFrame(bytes);
    const stanza = await decodeBinaryNode(this.noise.decrypt(bytes));
    this.received.push(stanza);
    if (stanza.tag === 'ack') this.acks.push(stanza);
    await this.handlers.onNode(this, stanza);
  }

  private onHandshakeFrame(bytes: Buffer): void {
    if (!this.sentHello) {
      this.sentHello = true;
      this.ws.send(frame(this.noise.serverHello(bytes)));
      return;
    }
    const { clientStaticKey, payload } = this.noise.clientFinish(bytes);
    this.clientStaticKey = clientStaticKey;
    this.payload = payload;
    this.state = 'open';
    this.handlers.onHandshake(this);
  }
}
