/** Downloads an agent's attachment into a temporary file, only from Chatwoot and the listed storage hosts (DESIGN.md, Decisions 15). */
import { randomUUID } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import ipaddr from 'ipaddr.js';
import { RequestFilteringHttpAgent, RequestFilteringHttpsAgent } from 'request-filtering-agent';
import { AppError, coerceError } from '../lib/errors.js';

/**
 * Why a download failed:
 * - `malformed_url`: the link (or a redirect's `Location`) does not parse, has a bad
 *   percent-escape, or carries credentials.
 * - `unsupported_scheme`: not http or https.
 * - `host_not_allowed`: neither Chatwoot's origin nor an `OUTBOUND_MEDIA_HOSTS` entry.
 * - `private_address`: a storage host resolves to a private, loopback, link-local or
 *   other non-unicast address.
 * - `too_many_redirects`, `too_large`, `timeout` (the whole-download deadline).
 * - `http_status`: the final answer was not 2xx (see `status`).
 * - `network`: DNS, connection or TLS failure, or the connection broke mid-body.
 * - `aborted`: the caller's signal fired (shutdown).
 * - `local_io`: the temporary file could not be written.
 */
export type AttachmentFetchReason =
  | 'malformed_url'
  | 'unsupported_scheme'
  | 'host_not_allowed'
  | 'private_address'
  | 'too_many_redirects'
  | 'too_large'
  | 'timeout'
  | 'http_status'
  | 'network'
  | 'aborted'
  | 'local_io';

/** What an {@link AttachmentFetchError} carries besides its reason and log message. */
export interface AttachmentFetchErrorDetails {
  /** True when the same download may succeed later. */
  retryable: boolean;
  /** A sentence for the agent: names no host, port, address or remote text. */
  agentMessage: string;
  /** The failing hop as origin and path only (never the query, never credentials). */
  url?: string;
  /** HTTP status, for `http_status`. */
  status?: number;
  /** From `Retry-After` on a 429 or 503, in milliseconds. */
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * A refused or failed attachment download. `message` is for the log: it may
 * name the host and status, never the URL's query or credentials.
 */
export class AttachmentFetchError extends AppError {
  readonly code = 'ATTACHMENT_FETCH';
  readonly reason: AttachmentFetchReason;
  readonly retryable: boolean;
  readonly agentMessage: string;
  readonly url: string | undefined;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(reason: AttachmentFetchReason, message: string, details: AttachmentFetchErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.reason = reason;
    this.retryable = details.retryable;
    this.agentMessage = details.agentMessage;
    this.url = details.url;
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** An invalid {@link AttachmentFetcher} option or `OUTBOUND_MEDIA_HOSTS` entry; the message is a sentence for the operator. */
export class AttachmentFetcherConfigError extends AppError {
  readonly code = 'ATTACHMENT_FETCHER_CONFIG';
}

/** Resolves a host name to all its addresses (the seam over `dns.lookup(host, { all: true })`). */
export type HostLookup = (hostname: string) => Promise<readonly LookupAddress[]>;

/** Options of an {@link AttachmentFetcher}. */
export interface AttachmentFetcherOptions {
  /** `CHATWOOT_BASE_URL`: its origin is always allowed, private addresses included. */
  chatwootBaseUrl: string;
  /** `OUTBOUND_MEDIA_HOSTS` entries (see {@link parseAllowedHosts}). */
  allowedHosts: readonly string[];
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Wall-clock limit of one download, redirects and body included, in milliseconds. */
  deadlineMs: number;
  /** Where temporary files go. Default `os.tmpdir()`. */
  tmpDir?: string;
  /** Redirects followed before giving up. Default 5. */
  maxRedirects?: number;
  /** Test seam, not configuration: resolves host names. Default `dns.lookup`. */
  lookup?: HostLookup;
  /** Test seam, not configuration: exact addresses treated as public. */
  allowAddresses?: readonly string[];
}

/** A downloaded attachment. The caller owns `file` and deletes it. */
export interface FetchedAttachment {
  /** Absolute path of the temporary file (mode 0600). */
  file: string;
  bytes: number;
  /** The response's `Content-Type`, as sent. */
  contentType: string | undefined;
}

interface HostRule {
  host: string;
  /** Undefined: only the scheme's default port. */
  port: number | undefined;
  /** `*.host`: any subdomain of `host`, not `host` itself. */
  wildcard: boolean;
}

/** One request of a download: the URL, whether it is Chatwoot's origin, and its loggable form. */
interface Hop {
  url: URL;
  chatwoot: boolean;
  shown: string;
}

interface FetchContext {
  hop: Hop;
  /** The download began at Chatwoot's origin (its `data_url`). */
  startedAtChatwoot: boolean;
  file: string | undefined;
  diskError: Error | undefined;
}

const LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const HOST_ENTRY = new RegExp(`^(\\*\\.)?(${LABEL}(?:\\.${LABEL})*)(?::(\\d{1,5}))?$`);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME', 'ENODATA']);
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
const REQUEST_HEADERS = { accept: '*/*', 'accept-encoding': 'identity', 'user-agent': 'Ponte' };
const NOT_ALLOWED = 'the attachment is stored on a host Ponte is not allowed to fetch from (see OUTBOUND_MEDIA_HOSTS)';

function parseHostRule(raw: string): HostRule {
  const entry = raw.trim().toLowerCase();
  const m = HOST_ENTRY.exec(entry);
  const name = m?.[2];
  if (!m || name === undefined || !URL.canParse(`http://${name}/`)) {
    throw new AttachmentFetcherConfigError(`"${raw}" is not a host name: write host, host:port or *.domain, without a scheme or path`);
  }
  const wildcard = m[1] !== undefined;
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new AttachmentFetcherConfigError(`"${raw}" has a port outside 1-65535`);
  if (wildcard && /^\d+$/.test(name.slice(name.lastIndexOf('.') + 1))) {
    throw new AttachmentFetcherConfigError(`"${raw}" puts a wildcard on an IP address; a wildcard needs a domain name`);
  }
  // The URL parser's form, so that entries compare equal to `URL.hostname` (numeric forms such as 1.2.3 become 1.2.0.3).
  const host = wildcard ? name : new URL(`http://${name}/`).hostname;
  return { host, port, wildcard };
}

function formatHostRule(r: HostRule): string {
  return `${r.wildcard ? '*.' : ''}${r.host}${r.port === undefined ? '' : `:${r.port}`}`;
}

/**
 * Validates `OUTBOUND_MEDIA_HOSTS`: entries separated by commas or white
 * space, each `host`, `host:port` or `*.domain` (any subdomain of `domain`,
 * not `domain` itself). An entry without a port allows only the scheme's
 * default port (80, 443). Returns the entries lower-cased and without
 * duplicates; throws {@link AttachmentFetcherConfigError} naming the first bad one.
 */
export function parseAllowedHosts(raw: string): string[] {
  const entries = raw.split(/[,\s]+/).filter((e) => e !== '');
  return [...new Set(entries.map((e) => formatHostRule(parseHostRule(e))))];
}

function ruleMatches(rule: HostRule, url: URL): boolean {
  // URL.port is '' for the scheme's default port, whatever the link spelled.
  if (rule.port === undefined ? url.port !== '' : Number(url.port) !== rule.port) return false;
  return rule.wildcard ? url.hostname.endsWith(`.${rule.host}`) : url.hostname === rule.host;
}

function bareHost(hostname: string): string {
  return hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
}

function formatBytes(n: number): string {
  const one = (x: number): string => String(Math.round(x * 10) / 10);
  if (n >= 1024 * 1024) return `${one(n / (1024 * 1024))} MiB`;
  if (n >= 1024) return `${one(n / 1024)} KiB`;
  return `${n} bytes`;
}

function errorCode(e: Error): string | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function retryAfterMs(res: IncomingMessage): number | undefined {
  const header = res.headers['retry-after'];
  if (header === undefined) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function integerAtLeast(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new AttachmentFetcherConfigError(`${name} must be an integer of at least ${min}, not ${value}`);
  return value;
}

/** One timer for the whole download, merged with the caller's signal. */
class Deadline {
  readonly signal: AbortSignal;
  timedOut = false;
  private readonly controller = new AbortController();
  private readonly outer: AbortSignal | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly onCancel: () => void;

  constructor(ms: number, outer: AbortSignal | undefined) {
    this.signal = this.controller.signal;
    this.outer = outer;
    this.onCancel = () => this.controller.abort(outer?.reason);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new Error(`attachment download deadline of ${ms} ms passed`));
    }, ms);
    if (outer?.aborted) this.onCancel();
    else outer?.addEventListener('abort', this.onCancel, { once: true });
  }

  /** The caller's signal fired before the deadline did. */
  get cancelled(): boolean {
    return !this.timedOut && this.outer?.aborted === true;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.outer?.removeEventListener('abort', this.onCancel);
  }
}

/**
 * Downloads agent attachments (Chatwoot's `data_url`) into temporary files,
 * guarding against server-side request forgery:
 *
 * - Each hop, the first and every redirect (followed here, at most
 *   `maxRedirects`), must be Chatwoot's origin or match an allowed host, over
 *   http or https.
 * - Storage hosts must resolve to public unicast addresses. The check runs
 *   in the connection's own DNS lookup (and again in request-filtering-agent),
 *   so the address checked is the address connected to, and DNS rebinding
 *   cannot slip past it. Chatwoot's origin may be private (a docker service).
 * - One deadline covers the redirects and the body; the body stops as soon as
 *   it passes `maxBytes`, and is refused at once when `Content-Length` says so.
 *
 * On failure the temporary file is removed and an {@link AttachmentFetchError} thrown.
 */
export class AttachmentFetcher {
  private readonly chatwootOrigin: string;
  private readonly rules: readonly HostRule[];
  private readonly maxBytes: number;
  private readonly deadlineMs: number;
  private readonly maxRedirects: number;
  private readonly tmpDir: string;
  private readonly resolveHost: HostLookup;
  private readonly publicAddresses: ReadonlySet<string>;
  private readonly agents: {
    chatwoot: { http: RequestFilteringHttpAgent; https: RequestFilteringHttpsAgent };
    storage: { http: RequestFilteringHttpAgent; https: RequestFilteringHttpsAgent };
  };
  private closed = false;

  constructor(o: AttachmentFetcherOptions) {
    if (!URL.canParse(o.chatwootBaseUrl) || !/^https?:$/.test(new URL(o.chatwootBaseUrl).protocol)) {
      throw new AttachmentFetcherConfigError('chatwootBaseUrl must be an http(s) URL');
    }
    this.chatwootOrigin = new URL(o.chatwootBaseUrl).origin;
    this.rules = o.allowedHosts.map(parseHostRule);
    this.maxBytes = integerAtLeast('maxBytes', o.maxBytes, 1);
    this.deadlineMs = integerAtLeast('deadlineMs', o.deadlineMs, 1);
    this.maxRedirects = integerAtLeast('maxRedirects', o.maxRedirects ?? 5, 0);
    this.tmpDir = o.tmpDir ?? tmpdir();
    this.resolveHost = o.lookup ?? ((hostname) => dnsLookup(hostname, { all: true }));
    const allow = o.allowAddresses ?? [];
    for (const a of allow) if (isIP(a) === 0) throw new AttachmentFetcherConfigError(`allowAddresses holds "${a}", which is not an IP address`);
    this.publicAddresses = new Set(allow.map((a) => ipaddr.parse(a).toNormalizedString()));
    const chatwoot = { keepAlive: true, allowPrivateIPAddress: true, allowMetaIPAddress: false };
    const storage = { keepAlive: true, allowPrivateIPAddress: false, allowMetaIPAddress: false, allowIPAddressList: [...allow] };
    this.agents = {
      chatwoot: { http: new RequestFilteringHttpAgent(chatwoot), https: new RequestFilteringHttpsAgent(chatwoot) },
      storage: { http: new RequestFilteringHttpAgent(storage), https: new RequestFilteringHttpsAgent(storage) },
    };
  }

  /**
   * Downloads `url` into a new temporary file and returns its path; the
   * caller deletes it. `signal` aborts the download (reason `aborted`).
   * @throws AttachmentFetchError
   */
  async fetchToFile(url: string, signal?: AbortSignal): Promise<FetchedAttachment> {
    const first = this.hop(url, undefined);
    const ctx: FetchContext = { hop: first, startedAtChatwoot: first.chatwoot, file: undefined, diskError: undefined };
    const deadline = new Deadline(this.deadlineMs, signal);
    try {
      return await this.download(ctx, deadline.signal);
    } catch (thrown) {
      const err = this.failure(coerceError(thrown), ctx, deadline);
      throw await this.discard(ctx.file, err);
    } finally {
      deadline.dispose();
    }
  }

  /** Closes idle keep-alive connections. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const group of [this.agents.chatwoot, this.agents.storage]) {
      group.http.destroy();
      group.https.destroy();
    }
  }

  private async download(ctx: FetchContext, signal: AbortSignal): Promise<FetchedAttachment> {
    for (let redirects = 0; ; redirects++) {
      const hop = ctx.hop;
      const res = await this.request(hop, signal);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (REDIRECTS.has(status) && location !== undefined) {
        res.destroy();
        if (redirects >= this.maxRedirects) {
          throw new AttachmentFetchError('too_many_redirects', `attachment download redirected more than ${this.maxRedirects} times (${hop.shown})`, {
            retryable: false,
            agentMessage: 'the attachment link redirects too many times',
            url: hop.shown,
          });
        }
        ctx.hop = this.hop(location, hop.url);
        continue;
      }
      if (status < 200 || status > 299) {
        res.destroy();
        throw this.statusError(status, res, ctx);
      }
      const declared = Number(res.headers['content-length']);
      if (res.headers['content-length'] !== undefined && Number.isFinite(declared) && declared > this.maxBytes) {
        res.destroy();
        throw this.tooLarge(hop, `declares ${declared} bytes`);
      }
      const contentType = res.headers['content-type'];
      const file = join(this.tmpDir, `ponte-attachment-${randomUUID()}`);
      ctx.file = file;
      const bytes = await this.save(res, file, ctx, signal);
      return { file, bytes, contentType };
    }
  }

  /** Parses and checks one hop: scheme, credentials, host list, and a literal address. */
  private hop(raw: string, base: URL | undefined): Hop {
    const what = base === undefined ? 'attachment URL' : `redirect from ${base.protocol}//${base.host}${base.pathname}`;
    if (!URL.canParse(raw, base?.href)) throw this.malformed(`${what} does not parse as a URL`, undefined);
    const url = new URL(raw, base);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      // Only the scheme: the rest of a data: or javascript: URL is its content.
      throw new AttachmentFetchError('unsupported_scheme', `${what} has the scheme ${url.protocol}, not http or https`, {
        retryable: false,
        agentMessage: 'the attachment link is not an http or https address',
      });
    }
    const shown = `${url.protocol}//${url.host}${url.pathname}`;
    if (url.username !== '' || url.password !== '') throw this.malformed(`${what} carries credentials (${url.protocol}//${url.host})`, undefined);
    if (BAD_PERCENT.test(url.pathname + url.search)) throw this.malformed(`${what} has a bad percent-escape (${url.protocol}//${url.host})`, shown);
    const chatwoot = url.origin === this.chatwootOrigin;
    const hop = { url, chatwoot, shown };
    if (!chatwoot && !this.rules.some((r) => ruleMatches(r, url))) {
      throw new AttachmentFetchError('host_not_allowed', `attachment host ${url.host} is neither Chatwoot's origin nor in OUTBOUND_MEDIA_HOSTS (${shown})`, {
        retryable: false,
        agentMessage: NOT_ALLOWED,
        url: shown,
      });
    }
    // A literal address is never looked up, so it is checked here (the agent checks it again).
    const literal = bareHost(url.hostname);
    if (isIP(literal) !== 0 && !this.permits(literal, chatwoot)) throw this.privateAddress(hop, literal);
    return hop;
  }

  private request(hop: Hop, signal: AbortSignal): Promise<IncomingMessage> {
    const secure = hop.url.protocol === 'https:';
    const group = hop.chatwoot ? this.agents.chatwoot : this.agents.storage;
    const options = { agent: secure ? group.https : group.http, lookup: this.connectLookup(hop), signal, headers: REQUEST_HEADERS };
    return new Promise((resolve, reject) => {
      const req = secure ? https.request(hop.url, options, resolve) : http.request(hop.url, options, resolve);
      // Stays attached after the response: an abort mid-body is reported here too, and must not go unhandled.
      req.on('error', reject);
      req.end();
    });
  }

  /** The connection's DNS lookup: every address found must be allowed, or the connection is not made. */
  private connectLookup(hop: Hop): LookupFunction {
    return (hostname, options, callback) => {
      const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
      this.resolveHost(hostname).then(
        (found) => {
          const usable = found.filter((a) => family === 0 || a.family === family);
          const first = usable[0];
          if (first === undefined) {
            callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND', hostname }), '');
            return;
          }
          const refused = usable.find((a) => !this.permits(a.address, hop.chatwoot));
          if (refused !== undefined) callback(this.privateAddress(hop, refused.address), '');
          else if (options.all === true) callback(null, [...usable]);
          else callback(null, first.address, first.family);
        },
        (thrown: unknown) => callback(coerceError(thrown), ''),
      );
    };
  }

  /** The rule request-filtering-agent applies: unicast only, except on Chatwoot's origin; never the unspecified address. */
  private permits(address: string, chatwoot: boolean): boolean {
    if (isIP(address) === 0) return false;
    const parsed = ipaddr.parse(address);
    if (this.publicAddresses.has(parsed.toNormalizedString())) return true;
    const range = parsed.range();
    if (range === 'unspecified') return false;
    return chatwoot || range === 'unicast';
  }

  /** Streams the body into `file`, stopping as soon as it passes `maxBytes`. */
  private async save(res: IncomingMessage, file: string, ctx: FetchContext, signal: AbortSignal): Promise<number> {
    const max = this.maxBytes;
    const tooLarge = (): AttachmentFetchError => this.tooLarge(ctx.hop, `passed ${max} bytes`);
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
        bytes += chunk.length;
        if (bytes > max) done(tooLarge());
        else done(null, chunk);
      },
    });
    const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
    out.once('error', (e) => {
      ctx.diskError = e;
    });
    await pipeline(res, counter, out, { signal });
    return bytes;
  }

  /** Turns whatever ended the download into an AttachmentFetchError; the order decides between causes that coincide. */
  private failure(e: Error, ctx: FetchContext, deadline: Deadline): AttachmentFetchError {
    if (e instanceof AttachmentFetchError) return e;
    const { hop } = ctx;
    const from = hop.chatwoot ? 'Chatwoot' : 'the file storage';
    if (deadline.timedOut) {
      return new AttachmentFetchError('timeout', `attachment download took longer than ${this.deadlineMs} ms (${hop.shown})`, {
        retryable: true,
        agentMessage: `the attachment did not download within ${Math.round(this.deadlineMs / 100) / 10} s`,
        url: hop.shown,
        cause: e,
      });
    }
    if (deadline.cancelled) {
      return new AttachmentFetchError('aborted', `attachment download was cancelled (${hop.shown})`, {
        retryable: true,
        agentMessage: 'the attachment download was interrupted',
        url: hop.shown,
        cause: e,
      });
    }
    if (ctx.diskError !== undefined) {
      return new AttachmentFetchError('local_io', `attachment could not be written to ${this.tmpDir}: ${errorCode(ctx.diskError) ?? ctx.diskError.message}`, {
        retryable: true,
        agentMessage: 'Ponte could not store the attachment temporarily',
        url: hop.shown,
        cause: ctx.diskError,
      });
    }
    const code = errorCode(e);
    // A storage host that does not resolve stays so; Chatwoot's own name failing is an outage.
    const retryable = code !== undefined && (DNS_CODES.has(code) ? hop.chatwoot : TRANSIENT_CODES.has(code));
    return new AttachmentFetchError('network', `attachment download from ${hop.url.host} failed: ${code ?? e.name} (${hop.shown})`, {
      retryable,
      agentMessage: `the attachment could not be downloaded from ${from} (it could not be reached)`,
      url: hop.shown,
      cause: e,
    });
  }

  private statusError(status: number, res: IncomingMessage, ctx: FetchContext): AttachmentFetchError {
    const { hop } = ctx;
    // Chatwoot may announce a file before it (or the storage it redirects to) has it: a 404 then may heal.
    const notYet = status === 404 && ctx.startedAtChatwoot;
    const retryable = status >= 500 || status === 429 || status === 408 || notYet;
    const wait = status === 429 || status === 503 ? retryAfterMs(res) : undefined;
    return new AttachmentFetchError('http_status', `attachment download got HTTP ${status} from ${hop.url.host} (${hop.shown})`, {
      retryable,
      agentMessage: `the attachment could not be downloaded from ${hop.chatwoot ? 'Chatwoot' : 'the file storage'} (HTTP ${status})`,
      url: hop.shown,
      status,
      retryAfterMs: wait,
    });
  }

  private tooLarge(hop: Hop, detail: string): AttachmentFetchError {
    return new AttachmentFetchError('too_large', `attachment ${detail}, more than the ${this.maxBytes} allowed (${hop.shown})`, {
      retryable: false,
      agentMessage: `the attachment is larger than ${formatBytes(this.maxBytes)}`,
      url: hop.shown,
    });
  }

  private privateAddress(hop: Hop, address: string): AttachmentFetchError {
    return new AttachmentFetchError('private_address', `attachment host ${hop.url.host} resolves to the non-public address ${address} (${hop.shown})`, {
      retryable: false,
      agentMessage: 'the attachment is stored at a private network address, which Ponte does not fetch from',
      url: hop.shown,
    });
  }

  private malformed(message: string, shown: string | undefined): AttachmentFetchError {
    return new AttachmentFetchError('malformed_url', message, {
      retryable: false,
      agentMessage: 'the attachment link is not a valid address',
      url: shown,
    });
  }

  /** Removes a partial file; a failure to remove it joins the error instead of replacing it. */
  private async discard(file: string | undefined, err: AttachmentFetchError): Promise<AttachmentFetchError> {
    if (file === undefined) return err;
    try {
      await rm(file, { force: true });
      return err;
    } catch (thrown) {
      const leftover = coerceError(thrown);
      return new AttachmentFetchError(err.reason, `${err.message}; the temporary file ${file} could not be removed`, {
        retryable: err.retryable,
        agentMessage: err.agentMessage,
        url: err.url,
        status: err.status,
        retryAfterMs: err.retryAfterMs,
        cause: new AggregateError([err, leftover], 'download failed, then its temporary file could not be removed'),
      });
    }
  }
}
