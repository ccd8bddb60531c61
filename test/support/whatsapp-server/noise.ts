/**
 * The server side of WhatsApp's Noise_XX_25519_AESGCM_SHA256 handshake and
 * its transport, the mirror image of Baileys' `Utils/noise-handler.js`, plus
 * the 3-byte length framing both directions use on the websocket.
 */
import { aesDecryptGCM, aesEncryptGCM, Curve, hkdf, type KeyPair, NOISE_MODE, NOISE_WA_HEADER, proto, sha256 } from '@whiskeysockets/baileys';

const EMPTY = Buffer.alloc(0);

function iv(counter: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(counter, 8);
  return b;
}

/** What the client sent in its ClientFinish. */
export interface ClientFinish {
  /** The client's static Noise key (its `creds.noiseKey.public`). */
  clientStaticKey: Buffer;
  payload: proto.ClientPayload;
}

/**
 * One connection's handshake and, once it is done, its transport keys.
 * Call `serverHello()`, then `clientFinish()`, then `encrypt`/`decrypt`.
 */
export class ServerNoise {
  private hash: Buffer;
  private salt: Buffer;
  private key: Buffer;
  private counter = 0;
  private ephemeral: KeyPair | undefined;
  private transport: { enc: Buffer; dec: Buffer; read: number; write: number } | undefined;

  constructor(
    private readonly staticKey: KeyPair,
    private readonly certChain: Uint8Array,
  ) {
    const mode = Buffer.from(NOISE_MODE);
    this.hash = mode.length === 32 ? mode : sha256(mode);
    this.salt = this.hash;
    this.key = this.hash;
  }

  /** Answers the client's ephemeral key with the encoded ServerHello. */
  serverHello(clientHello: Uint8Array): Uint8Array {
    const { clientHello: hello } = proto.HandshakeMessage.decode(clientHello);
    const clientEphemeral = hello?.ephemeral;
    if (!clientEphemeral) throw new Error('ClientHello without an ephemeral key');
    this.authenticate(NOISE_WA_HEADER);
    this.authenticate(clientEphemeral);
    const ephemeral = Curve.generateKeyPair();
    this.ephemeral = ephemeral;
    this.authenticate(ephemeral.public);
    this.mix(Curve.sharedKey(ephemeral.private, clientEphemeral));
    const encStatic = this.encryptHandshake(this.staticKey.public);
    this.mix(Curve.sharedKey(this.staticKey.private, clientEphemeral));
    const payload = this.encryptHandshake(this.certChain);
    return proto.HandshakeMessage.encode({ serverHello: { ephemeral: ephemeral.public, static: encStatic, payload } }).finish();
  }

  /** Reads the ClientFinish and switches to transport keys. */
  clientFinish(frame: Uint8Array): ClientFinish {
    const { clientFinish } = proto.HandshakeMessage.decode(frame);
    if (!this.ephemeral || !clientFinish?.static || !clientFinish.payload) throw new Error('unexpected ClientFinish');
    const clientStaticKey = this.decryptHandshake(clientFinish.static);
    this.mix(Curve.sharedKey(this.ephemeral.private, clientStaticKey));
    const payload = proto.ClientPayload.decode(this.decryptHandshake(clientFinish.payload));
    const out = Buffer.from(hkdf(EMPTY, 64, { salt: this.salt, info: '' }));
    // The client writes with the first half and reads with the second.
    this.transport = { dec: out.subarray(0, 32), enc: out.subarray(32), read: 0, write: 0 };
    return { clientStaticKey, payload };
  }

  encrypt(plaintext: Uint8Array): Buffer {
    const t = this.requireTransport();
    return aesEncryptGCM(plaintext, t.enc, iv(t.write++), EMPTY);
  }

  decrypt(ciphertext: Uint8Array): Buffer {
    const t = this.requireTransport();
    return aesDecryptGCM(ciphertext, t.dec, iv(t.read++), EMPTY);
  }

  private requireTransport() {
    if (!this.transport) throw new Error('Noise handshake not finished');
    return this.transport;
  }

  private authenticate(data: Uint8Array): void {
    this.hash = sha256(Buffer.concat([this.hash, data]));
  }

  private mix(data: Uint8Array): void {
    const out = Buffer.from(hkdf(Buffer.from(data), 64, { salt: this.salt, info: '' }));
    this.salt = out.subarray(0, 32);
    this.key = out.subarray(32);
    this.counter = 0;
  }

  private encryptHandshake(plaintext: Uint8Array): Buffer {
    const out = aesEncryptGCM(plaintext, this.key, iv(this.counter++), this.hash);
    this.authenticate(out);
    return out;
  }

  private decryptHandshake(ciphertext: Uint8Array): Buffer {
    const out = aesDecryptGCM(ciphertext, this.key, iv(this.counter++), this.hash);
    this.authenticate(ciphertext);
    return out;
  }
}

/** Prefixes a frame with its 3-byte big-endian length. */
export function frame(bytes: Uint8Array): Buffer {
  const head = Buffer.alloc(3);
  head.writeUIntBE(bytes.length, 0, 3);
  return Buffer.concat([head, bytes]);
}

/**
 * Splits the client's byte stream into frames. The first websocket message
 * starts with the intro: `WA` + version (NOISE_WA_HEADER), optionally
 * preceded by an `ED` routing-info block.
 */
export class FrameReader {
  private buffer = EMPTY;
  private introDone = false;

  /** Adds received bytes and returns every complete frame. */
  push(data: Uint8Array): Buffer[] {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, data]) : Buffer.from(data);
    if (!this.introDone && !this.skipIntro()) return [];
    const frames: Buffer[] = [];
    while (this.buffer.length >= 3) {
      const size = this.buffer.readUIntBE(0, 3);
      if (this.buffer.length < size + 3) break;
      frames.push(this.buffer.subarray(3, size + 3));
      this.buffer = this.buffer.subarray(size + 3);
    }
    return frames;
  }

  private skipIntro(): boolean {
    let offset = 0;
    if (this.buffer.length >= 2 && this.buffer.toString('latin1', 0, 2) === 'ED') {
      if (this.buffer.length < 7) return false;
      offset = 7 + this.buffer.readUIntBE(4, 3);
    }
    if (this.buffer.length < offset + NOISE_WA_HEADER.length) return false;
    const header = this.buffer.subarray(offset, offset + NOISE_WA_HEADER.length);
    if (!header.equals(Buffer.from(NOISE_WA_HEADER))) throw new Error('bad Noise intro header');
    this.buffer = this.buffer.subarray(offset + NOISE_WA_HEADER.length);
    this.introDone = true;
    return true;
  }
}
