// Tests the attachment download guard against real HTTP servers on 127.0.0.1: host list, redirects, private addresses, size, deadline, errors.
import { randomBytes } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AttachmentFetcher,
  AttachmentFetcherConfigError,
  AttachmentFetchError,
  parseAllowedHosts,
  type AttachmentFetcherOptions,
  type HostLookup,
} from '../../../src/outbound/attachment-fetch.js';

interface TestServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  port: number;
  /** Paths requested, query included. */
  requests: string[];
  server: http.Server;
}

const REMOTE_TEXT = 'REMOTE-BODY-TEXT';
const QUERY = '?token=s3cr3t-signature&disposition=inline';

let servers: TestServer[] = [];
let fetchers: AttachmentFetcher[] = [];
let dir = '';

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ponte-fetch-test-'));
});

afterEach(async () => {
  for (const f of fetchers) f.close();
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.server.closeAllConnections();
          s.server.close(() => resolve());
        }),
    ),
  );
  servers = [];
  fetchers = [];
  await rm(dir, { recursive: true, force: true });
});

async function serve(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<TestServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const s = { origin: `http://127.0.0.1:${port}`, port, requests, server };
  servers.push(s);
  return s;
}

/** A server answering every request with one status and a body the agent must never see. */
function answering(status: number, headers: http.OutgoingHttpHeaders = {}): Promise<TestServer> {
  return serve((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end(`${REMOTE_TEXT} ${status}`);
  });
}

function redirectingTo(location: string, status = 302): Promise<TestServer> {
  return serve((_req, res) => {
    res.writeHead(status, { location });
    res.end(REMOTE_TEXT);
  });
}

function sending(body: Buffer, contentType = 'application/octet-stream'): Promise<TestServer> {
  return serve((_req, res) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': body.length });
    res.end(body);
  });
}

/** Resolves the given names to the given addresses, and nothing else. */
function names(table: Record<string, string[]>): HostLookup {
  return (hostname) => {
    const addresses = table[hostname];
    if (addresses === undefined) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }));
    return Promise.resolve(addresses.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
}

function fetcher(o: Partial<AttachmentFetcherOptions> & Pick<AttachmentFetcherOptions, 'chatwootBaseUrl'>): AttachmentFetcher {
  const f = new AttachmentFetcher({ allowedHosts: [], maxBytes: 1024 * 1024, deadlineMs: 5000, tmpDir: dir, ...o });
  fetchers.push(f);
  return f;
}

/**
 * Runs a download that must fail, and checks what every failure must hold:
 * the agent's sentence names no host, port, address or remote text, and the
 * log message carries no query string.
 */
async function fails(f: AttachmentFetcher, url: string, signal?: AbortSignal): Promise<AttachmentFetchError> {
  const outcome = await f.fetchToFile(url, signal).then(
    (ok) => ok,
    (e: unknown) => e,
  );
  expect(outcome).toBeInstanceOf(AttachmentFetchError);
  const err = outcome as AttachmentFetchError;
  expect(err.code).toBe('ATTACHMENT_FETCH');
  expect(err.agentMessage).not.toMatch(/\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/);
  expect(err.agentMessage).not.toMatch(/localhost|example|\.test|:\/\/|\[|s3cr3t|token/i);
  expect(err.agentMessage).not.toContain(REMOTE_TEXT);
  for (const s of servers) expect(err.agentMessage).not.toContain(String(s.port));
  for (const text of [err.message, err.url ?? '']) {
    expect(text).not.toContain('?');
    expect(text).not.toMatch(/s3cr3t|token=|hunter2/);
    expect(text).not.toContain(REMOTE_TEXT);
  }
  // Nothing is left behind in the temporary directory.
  expect(await readdir(dir)).toEqual([]);
  return err;
}

describe('AttachmentFetcher', () => {
  it('downloads from the Chatwoot origin into a file the caller removes', async () => {
    const body = randomBytes(3000);
    const cw = await sending(body, 'image/png');
    const f = fetcher({ chatwootBaseUrl: `${cw.origin}/` });

    const got = await f.fetchToFile(`${cw.origin}/rails/active_storage/blobs/redirect/abc--def/photo.png${QUERY}`);

    expect(got.bytes).toBe(3000);
    expect(got.contentType).toBe('image/png');
    expect((await readFile(got.file)).equals(body)).toBe(true);
    expect((await stat(got.file)).mode & 0o777).toBe(0o600);
    expect(got.file.startsWith(dir)).toBe(true);
    await rm(got.file);
    expect(await readdir(dir)).toEqual([]);
  });

  it('follows a redirect from Chatwoot to an allowed storage host', async () => {
    const body = randomBytes(5000);
    const media = await sending(body, 'video/mp4');
    const cw = await redirectingTo(`http://media.example.test:${media.port}/bucket/video.mp4?X-Amz-Signature=s3cr3t`);
    const f = fetcher({
      chatwootBaseUrl: cw.origin,
      allowedHosts: [`media.example.test:${media.port}`],
      lookup: names({ 'media.example.test': ['127.0.0.1'] }),
      allowAddresses: ['127.0.0.1'],
    });

    const got = await f.fetchToFile(`${cw.origin}/rails/active_storage/blobs/redirect/x/video.mp4${QUERY}`);

    expect((await readFile(got.file)).equals(body)).toBe(true);
    expect(got.contentType).toBe('video/mp4');
    expect(media.requests).toEqual(['/bucket/video.mp4?X-Amz-Signature=s3cr3t']);
    await rm(got.file);
  });

  it('matches a *.domain entry against a subdomain', async () => {
    const media = await sending(Buffer.from('hello'));
    const cw = await redirectingTo(`http://bucket.files.example.test:${media.port}/a.txt`);
    const f = fetcher({
      chatwootBaseUrl: cw.origin,
      allowedHosts: [`*.files.example.test:${media.port}`],
      lookup: names({ 'bucket.files.example.test': ['127.0.0.1'] }),
      allowAddresses: ['127.0.0.1'],
    });

    const got = await f.fetchToFile(`${cw.origin}/a.txt`);

    expect(await readFile(got.file, 'utf8')).toBe('hello');
    await rm(got.file);
  });

  it.each([
    ['a host not listed', 'other.example.test', (port: number) => `media.example.test:${port}`],
    ['a listed host on another port', 'media.example.test', () => 'media.example.test'],
    ['the apex of a *.domain entry', 'example.test', (port: number) => `*.example.test:${port}`],
  ])('refuses a redirect to %s without contacting it', async (_name, host, entry) => {
    const other = await sending(Buffer.from('internal'));
    const cw = await redirectingTo(`http://${host}:${other.port}/file${QUERY}`);
    const f = fetcher({
      chatwootBaseUrl: cw.origin,
      allowedHosts: [entry(other.port)],
      lookup: names({ [host]: ['127.0.0.1'] }),
      allowAddresses: ['127.0.0.1'],
    });

    const err = await fails(f, `${cw.origin}/rails/active_storage/blobs/redirect/x/file${QUERY}`);

    expect(err.reason).toBe('host_not_allowed');
    expect(err.retryable).toBe(false);
    expect(err.agentMessage).toBe('the attachment is stored on a host Ponte is not allowed to fetch from (see OUTBOUND_MEDIA_HOSTS)');
    expect(other.requests).toEqual([]);
  });

  it.each([
    ['another loopback port', (port: number) => `http://127.0.0.1:${port}/admin/secrets`],
    ['localhost on another port', (port: number) => `http://localhost:${port}/admin`],
    ['the IPv6 loopback', (port: number) => `http://[::1]:${port}/admin`],
    ['a relative path on another port', (port: number) => `//127.0.0.1:${port}/admin`],
  ])('refuses a redirect from Chatwoot to %s', async (_name, location) => {
    const internal = await sending(Buffer.from('internal'));
    const cw = await redirectingTo(location(internal.port));
    // allowAddresses only widens the address check: the host list still refuses.
    const f = fetcher({ chatwootBaseUrl: cw.origin, allowAddresses: ['127.0.0.1'] });

    const err = await fails(f, `${cw.origin}/rails/active_storage/blobs/redirect/x/file${QUERY}`);

    expect(err.reason).toBe('host_not_allowed');
    expect(internal.requests).toEqual([]);
  });

  it('refuses a data_url that is not on Chatwoot', async () => {
    const internal = await sending(Buffer.from('internal'));
    const cw = await sending(Buffer.from('x'));
    const f = fetcher({ chatwootBaseUrl: cw.origin });

    const err = await fails(f, `http://127.0.0.1:${internal.port}/metrics${QUERY}`);

    expect(err.reason).toBe('host_not_allowed');
    expect(internal.requests).toEqual([]);
  });

  it.each([
    ['a listed name that really resolves to loopback', 'localhost', undefined],
    ['a listed IP literal on loopback', '127.0.0.1', undefined],
    ['a name resolving to the metadata address', 'media.example.test', { 'media.example.test': ['169.254.169.254'] }],
    ['a name resolving to a private network', 'media.example.test', { 'media.example.test': ['10.1.2.3'] }],
    ['a name resolving to an IPv4-mapped loopback', 'media.example.test', { 'media.example.test': ['::ffff:127.0.0.1'] }],
    ['a name with one private address among public ones', 'media.example.test', { 'media.example.test': ['93.184.216.34', '192.168.0.10'] }],
  ])('refuses %s as private_address', async (_name, host, table) => {
    const media = await sending(Buffer.from('internal'));
    const cw = await redirectingTo(`http://${host}:${media.port}/file${QUERY}`);
    const f = fetcher({
      chatwootBaseUrl: cw.origin,
      allowedHosts: [`${host}:${media.port}`],
      ...(table === undefined ? {} : { lookup: names(table) }),
    });

    const err = await fails(f, `${cw.origin}/rails/active_storage/blobs/redirect/x/file${QUERY}`);

    expect(err.reason).toBe('private_address');
    expect(err.retryable).toBe(false);
    expect(media.requests).toEqual([]);
  });

  it('checks the address of an https storage host in its connection too', async () => {
    // A plain-http server: reaching it proves the lookup seam was used; the TLS handshake then fails.
    const media = await sending(Buffer.from('not tls'));
    const cw = await redirectingTo(`https://media.example.test:${media.port}/bucket/a.png${QUERY}`);
    const base = { chatwootBaseUrl: cw.origin, allowedHosts: [`media.example.test:${media.port}`], lookup: names({ 'media.example.test': ['127.0.0.1'] }) };

    const refused = await fails(fetcher(base), `${cw.origin}/a.png${QUERY}`);
    expect(refused.reason).toBe('private_address');

    const reached = await fails(fetcher({ ...base, allowAddresses: ['127.0.0.1'] }), `${cw.origin}/a.png${QUERY}`);
    expect(reached.reason).toBe('network');
    expect(reached.retryable).toBe(false);
  });

  it('accepts a private address on Chatwoot’s own host name', async () => {
    const cw = await sending(Buffer.from('from chatwoot'));
    const f = fetcher({ chatwootBaseUrl: `http://chatwoot.internal.test:${cw.port}`, lookup: names({ 'chatwoot.internal.test': ['127.0.0.1'] }) });

    const got = await f.fetchToFile(`http://chatwoot.internal.test:${cw.port}/rails/active_storage/blobs/x${QUERY}`);

    expect(await readFile(got.file, 'utf8')).toBe('from chatwoot');
    await rm(got.file);
  });

  describe('redirect limit', () => {
    async function chain(): Promise<TestServer> {
      return serve((req, res) => {
        const n = Number(/^\/r\/(\d+)\/(\d+)$/.exec(req.url ?? '')?.[1]);
        const total = Number(/^\/r\/(\d+)\/(\d+)$/.exec(req.url ?? '')?.[2]);
        if (n < total) res.writeHead(302, { location: `/r/${n + 1}/${total}` }).end();
        else res.writeHead(200, { 'content-type': 'text/plain' }).end('end of chain');
      });
    }

    it('follows 5 redirects', async () => {
      const cw = await chain();
      const got = await fetcher({ chatwootBaseUrl: cw.origin }).fetchToFile(`${cw.origin}/r/0/5`);
      expect(await readFile(got.file, 'utf8')).toBe('end of chain');
      expect(cw.requests).toHaveLength(6);
      await rm(got.file);
    });

    it('refuses a sixth', async () => {
      const cw = await chain();
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `${cw.origin}/r/0/6`);
      expect(err.reason).toBe('too_many_redirects');
      expect(err.retryable).toBe(false);
      expect(cw.requests).toHaveLength(6);
    });
  });

  it('stops a body that passes the cap and removes the partial file', async () => {
    const cw = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/pdf' });
      res.write(randomBytes(800));
      setTimeout(() => res.write(randomBytes(800)), 50);
      setTimeout(() => res.end(randomBytes(800)), 100);
    });
    const f = fetcher({ chatwootBaseUrl: cw.origin, maxBytes: 1024 });

    const err = await fails(f, `${cw.origin}/big.pdf${QUERY}`);

    expect(err.reason).toBe('too_large');
    expect(err.retryable).toBe(false);
    expect(err.agentMessage).toBe('the attachment is larger than 1 KiB');
  });

  it('refuses a Content-Length over the cap without reading the body', async () => {
    // The body never ends: reading it would run into the deadline instead.
    const cw = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': 200 * 1024 * 1024 });
      res.write('x');
    });
    const f = fetcher({ chatwootBaseUrl: cw.origin, maxBytes: 64 * 1024 * 1024, deadlineMs: 10_000 });

    const err = await fails(f, `${cw.origin}/huge.mp4${QUERY}`);

    expect(err.reason).toBe('too_large');
    expect(err.agentMessage).toBe('the attachment is larger than 64 MiB');
  });

  it('gives up on a server that trickles one byte per 100 ms at the deadline', async () => {
    const timers: NodeJS.Timeout[] = [];
    const cw = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': 1000 });
      const t = setInterval(() => res.write('x'), 100);
      timers.push(t);
      res.on('close', () => clearInterval(t));
    });
    const f = fetcher({ chatwootBaseUrl: cw.origin, deadlineMs: 350 });

    const err = await fails(f, `${cw.origin}/slow.jpg${QUERY}`);

    for (const t of timers) clearInterval(t);
    expect(err.reason).toBe('timeout');
    expect(err.retryable).toBe(true);
  });

  it('gives up on a server that never answers at the deadline', async () => {
    const cw = await serve(() => undefined);
    const err = await fails(fetcher({ chatwootBaseUrl: cw.origin, deadlineMs: 200 }), `${cw.origin}/never${QUERY}`);
    expect(err.reason).toBe('timeout');
  });

  it('stops when the caller aborts', async () => {
    const cw = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.write('partial');
    });
    const f = fetcher({ chatwootBaseUrl: cw.origin });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);

    const err = await fails(f, `${cw.origin}/a.jpg${QUERY}`, stop.signal);

    expect(err.reason).toBe('aborted');
    expect(err.retryable).toBe(true);
  });

  describe('HTTP status', () => {
    it.each([
      [404, true],
      [500, true],
      [503, true],
      [429, true],
      [403, false],
      [410, false],
    ])('%i from Chatwoot: retryable %s', async (status, retryable) => {
      const cw = await answering(status);
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `${cw.origin}/rails/active_storage/blobs/redirect/x/a.png${QUERY}`);
      expect(err.reason).toBe('http_status');
      expect(err.status).toBe(status);
      expect(err.retryable).toBe(retryable);
      expect(err.agentMessage).toBe(`the attachment could not be downloaded from Chatwoot (HTTP ${status})`);
      expect(err.message).toContain(String(status));
    });

    it('reads Retry-After on a 429', async () => {
      const cw = await answering(429, { 'retry-after': '7' });
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `${cw.origin}/a.png`);
      expect(err.retryAfterMs).toBe(7000);
    });

    it('retries a 404 from the storage Chatwoot redirected to, not one from a storage link given directly', async () => {
      const media = await answering(404);
      const cw = await redirectingTo(`http://media.example.test:${media.port}/bucket/a.png${QUERY}`);
      const f = fetcher({
        chatwootBaseUrl: cw.origin,
        allowedHosts: [`media.example.test:${media.port}`],
        lookup: names({ 'media.example.test': ['127.0.0.1'] }),
        allowAddresses: ['127.0.0.1'],
      });

      const viaChatwoot = await fails(f, `${cw.origin}/rails/active_storage/blobs/redirect/x/a.png${QUERY}`);
      const direct = await fails(f, `http://media.example.test:${media.port}/bucket/a.png${QUERY}`);

      expect(viaChatwoot.retryable).toBe(true);
      expect(viaChatwoot.agentMessage).toBe('the attachment could not be downloaded from the file storage (HTTP 404)');
      expect(direct.retryable).toBe(false);
    });
  });

  describe('network', () => {
    it('treats a refused connection as retryable', async () => {
      const gone = await answering(200);
      const port = gone.port;
      await new Promise<void>((resolve) => gone.server.close(() => resolve()));
      servers = servers.filter((s) => s !== gone);

      const err = await fails(fetcher({ chatwootBaseUrl: `http://127.0.0.1:${port}` }), `http://127.0.0.1:${port}/a.png${QUERY}`);

      expect(err.reason).toBe('network');
      expect(err.retryable).toBe(true);
      expect(err.message).toContain('ECONNREFUSED');
    });

    it('treats a DNS failure of Chatwoot’s host as retryable, of a storage host as not', async () => {
      const f = fetcher({
        chatwootBaseUrl: 'http://chatwoot.internal.test:3000',
        allowedHosts: ['gone.example.test'],
        lookup: names({}),
      });

      const chatwoot = await fails(f, `http://chatwoot.internal.test:3000/a.png${QUERY}`);
      const storage = await fails(f, `http://gone.example.test/a.png${QUERY}`);

      expect([chatwoot.reason, chatwoot.retryable]).toEqual(['network', true]);
      expect([storage.reason, storage.retryable]).toEqual(['network', false]);
    });

    it('treats a connection reset mid-body as retryable', async () => {
      const cw = await serve((_req, res) => {
        res.writeHead(200, { 'content-length': 1000 });
        res.write('partial', () => res.socket?.destroy());
      });
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `${cw.origin}/a.png${QUERY}`);
      expect(err.reason).toBe('network');
      expect(err.retryable).toBe(true);
    });
  });

  describe('URLs', () => {
    it.each([
      ['not a URL', 'not a url at all'],
      ['a space in the host', 'http://exa mple.test/a.png'],
      ['a bad percent-escape in the host', 'http://exa%zzmple.test/a.png'],
    ])('refuses %s as malformed_url', async (_name, url) => {
      const err = await fails(fetcher({ chatwootBaseUrl: 'http://127.0.0.1:1' }), url);
      expect(err.reason).toBe('malformed_url');
      expect(err.retryable).toBe(false);
      expect(err.agentMessage).toBe('the attachment link is not a valid address');
    });

    it('refuses a bad percent-escape in the path before sending anything', async () => {
      const cw = await sending(Buffer.from('x'));
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `${cw.origin}/files/%zz/a%E0%A4%A.png${QUERY}`);
      expect(err.reason).toBe('malformed_url');
      expect(cw.requests).toEqual([]);
    });

    it('refuses a URL carrying credentials without logging them', async () => {
      const cw = await sending(Buffer.from('x'));
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `http://admin:hunter2@127.0.0.1:${cw.port}/a.png${QUERY}`);
      expect(err.reason).toBe('malformed_url');
      expect(err.message).not.toContain('admin');
      expect(cw.requests).toEqual([]);
    });

    it('refuses a malformed redirect location', async () => {
      const cw = await redirectingTo('http://exa mple.test/%zz');
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `${cw.origin}/a.png${QUERY}`);
      expect(err.reason).toBe('malformed_url');
    });

    it.each([
      ['a file: link', 'file:///etc/passwd'],
      ['a data: link', 'data:text/plain,s3cr3t'],
    ])('refuses %s as unsupported_scheme', async (_name, url) => {
      const err = await fails(fetcher({ chatwootBaseUrl: 'http://127.0.0.1:1' }), url);
      expect(err.reason).toBe('unsupported_scheme');
      expect(err.retryable).toBe(false);
    });

    it('refuses a redirect to a file: link', async () => {
      const cw = await redirectingTo('file:///etc/passwd');
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `${cw.origin}/a.png${QUERY}`);
      expect(err.reason).toBe('unsupported_scheme');
    });

    it('treats another scheme on Chatwoot’s host as another origin', async () => {
      const cw = await sending(Buffer.from('x'));
      const err = await fails(fetcher({ chatwootBaseUrl: cw.origin }), `https://127.0.0.1:${cw.port}/a.png${QUERY}`);
      expect(err.reason).toBe('host_not_allowed');
    });
  });

  it('validates its options', () => {
    const base = { chatwootBaseUrl: 'http://chatwoot:3000', allowedHosts: [], maxBytes: 1024, deadlineMs: 1000 };
    expect(() => new AttachmentFetcher({ ...base, chatwootBaseUrl: 'ftp://chatwoot' })).toThrow(AttachmentFetcherConfigError);
    expect(() => new AttachmentFetcher({ ...base, allowedHosts: ['https://s3.example.com'] })).toThrow(AttachmentFetcherConfigError);
    expect(() => new AttachmentFetcher({ ...base, maxBytes: 0 })).toThrow(AttachmentFetcherConfigError);
    expect(() => new AttachmentFetcher({ ...base, deadlineMs: 1.5 })).toThrow(AttachmentFetcherConfigError);
    expect(() => new AttachmentFetcher({ ...base, allowAddresses: ['not-an-ip'] })).toThrow(AttachmentFetcherConfigError);
    const f = new AttachmentFetcher(base);
    f.close();
    f.close();
  });
});

describe('parseAllowedHosts', () => {
  it.each([
    ['', []],
    ['  ', []],
    ['storage.googleapis.com', ['storage.googleapis.com']],
    ['*.s3.amazonaws.com, storage.googleapis.com', ['*.s3.amazonaws.com', 'storage.googleapis.com']],
    ['Files.Example.com:9000\n*.Blob.Core.Windows.NET', ['files.example.com:9000', '*.blob.core.windows.net']],
    ['a.example.com,,a.example.com , b.example.com', ['a.example.com', 'b.example.com']],
    ['minio:9000', ['minio:9000']],
    ['203.0.113.5:9000', ['203.0.113.5:9000']],
  ])('%j → %j', (raw, hosts) => {
    expect(parseAllowedHosts(raw)).toEqual(hosts);
  });

  it.each([
    ['https://s3.example.com'],
    ['s3.example.com/bucket'],
    ['user@s3.example.com'],
    ['*'],
    ['*.'],
    ['a.*.example.com'],
    ['a..example.com'],
    ['-a.example.com'],
    ['a_b.example.com'],
    ['s3.example.com:0'],
    ['s3.example.com:70000'],
    ['s3.example.com:'],
    ['*.10.0.0'],
    ['[::1]:9000'],
    ['s3.example.com?x=1'],
  ])('refuses %j with a sentence naming it', (entry) => {
    expect(() => parseAllowedHosts(`ok.example.com, ${entry}`)).toThrow(AttachmentFetcherConfigError);
    expect(() => parseAllowedHosts(entry)).toThrow(entry);
  });
});
