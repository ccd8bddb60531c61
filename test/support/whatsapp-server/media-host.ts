/**
 * The loopback media host ("mmg.whatsapp.net"): one plain-HTTP port from
 * which media is downloaded by its `url`, and one HTTPS port (see
 * `media-tls.ts`) that the `media_conn` answer names as the upload host,
 * because rc14 always uploads over https. Both ports accept uploads and
 * serve downloads from the same in-memory store.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Inbox } from './inbox.js';
import { TEST_MEDIA_CERT_PEM, TEST_MEDIA_KEY_PEM } from './media-tls.js';

/** One upload the linked account made. */
export interface MediaUpload {
  /** `image`, `video`, … from the upload path (`/mms/<type>/<hash>`). */
  mediaType: string;
  /** The encrypted file as uploaded. */
  bytes: Buffer;
  /** Where it can be downloaded (plain HTTP). */
  url: string;
  /** Whether the `token` in the upload URL is the SHA-256 of the bytes, as WhatsApp requires. */
  hashMatches: boolean;
  overTls: boolean;
}

/** The media host's own auth token, returned in `media_conn` and expected on uploads. */
export const MEDIA_AUTH_TOKEN = 'loopback-media-auth';

const b64Url = (b: Buffer) => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

function listen(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export class MediaHost {
  /** Every upload, in order. */
  readonly uploads = new Inbox<MediaUpload>('media uploads');
  private readonly files = new Map<string, Buffer>();
  private readonly plain: http.Server;
  private readonly tls: https.Server;
  private plainPort = 0;
  private tlsPort = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    /** Where request and server errors go (the WhatsApp server's error list). */
    public onError: (error: unknown) => void,
  ) {
    this.plain = http.createServer((req, res) => this.handle(req, res, false));
    this.tls = https.createServer({ cert: TEST_MEDIA_CERT_PEM, key: TEST_MEDIA_KEY_PEM }, (req, res) => this.handle(req, res, true));
    for (const s of [this.plain, this.tls]) s.on('error', (error) => this.onError(error));
  }

  static async start(onError: (error: unknown) => void = () => undefined): Promise<MediaHost> {
    const host = new MediaHost(onError);
    [host.plainPort, host.tlsPort] = await Promise.all([listen(host.plain), listen(host.tls)]);
    return host;
  }

  /** The plain-HTTP origin downloads use, e.g. `http://127.0.0.1:41234`. */
  get downloadOrigin(): string {
    return `http://127.0.0.1:${this.plainPort}`;
  }

  /** `host:port` of the HTTPS side, as the `media_conn` answer names it. */
  get uploadHost(): string {
    return `127.0.0.1:${this.tlsPort}`;
  }

  /** Stores an (already encrypted) file and returns its download URL. */
  put(bytes: Uint8Array, mediaType = 'image'): string {
    const path = `/mms/${mediaType}/${randomBytes(12).toString('hex')}.enc`;
    this.files.set(path, Buffer.from(bytes));
    return this.downloadOrigin + path;
  }

  /** Downloads a stored file over HTTP by its URL. */
  async download(url: string): Promise<Buffer> {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`media host answered ${res.status} for ${url}`);
    return Buffer.from(await res.arrayBuffer());
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.uploads.close();
      const stop = (s: http.Server | https.Server) =>
        new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        });
      await Promise.all([stop(this.plain), stop(this.tls)]);
    })();
    return this.closing;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, overTls: boolean): void {
    const url = new URL(req.url ?? '/', 'http://media.invalid');
    if (req.method === 'GET') {
      const file = this.files.get(url.pathname);
      if (!file) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.length }).end(file);
      return;
    }
    const upload = /^\/mms\/([a-z-]+)\/[^/]+$/.exec(url.pathname);
    if (req.method !== 'POST' || !upload?.[1]) return void res.writeHead(404).end();
    if (url.searchParams.get('auth') !== MEDIA_AUTH_TOKEN) return void res.writeHead(401).end();
    const mediaType = upload[1];
    const chunks: Buffer[] = [];
    req.on('error', (error) => {
      this.onError(error);
      res.destroy();
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const bytes = Buffer.concat(chunks);
      const hashMatches = url.searchParams.get('token') === b64Url(createHash('sha256').update(bytes).digest());
      const fileUrl = this.put(bytes, mediaType);
      this.uploads.push({ mediaType, bytes, url: fileUrl, hashMatches, overTls });
      // No `direct_path`: with one, rc14 rebuilds the URL as https://<host><path>,
      // which the plain-HTTP download port cannot answer.
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: fileUrl }));
    });
  }
}
