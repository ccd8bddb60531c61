/** The typed client of Chatwoot's Application API that the daemon calls. */
import { openAsBlob } from 'node:fs';
import { Pool } from 'undici';
import type { Config } from '../config/schema.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { parseJson } from '../lib/parse.js';
import {
  ChatwootBotTokenError,
  type ChatwootError,
  ChatwootLostResponseError,
  ChatwootNotFoundError,
  ChatwootRateLimitedError,
  ChatwootRejectedError,
  ChatwootUnauthorizedError,
  ChatwootUnavailableError,
  ChatwootConversationLimitError,
  ChatwootUnprocessableError,
} from './errors.js';
import type {
  ChatwootClientLike,
  CreateContactBody,
  CreateConversationBody,
  CreateInboxBody,
  CreateMessageBody,
  CwContact,
  CwContactInbox,
  CwConversation,
  CwFilterClause,
  CwInbox,
  CwMessage,
  CwMessageStatus,
  CwProfile,
  MessageAttachment,
  UpdateContactBody,
  UpdateInboxBody,
} from './types.js';

export interface ChatwootClientOptions {
  /** Chatwoot's base URL, e.g. `https://chat.example.com`. */
  baseUrl: string;
  /** A user (not agent bot) access token: an administrator, or an agent who is a member of the inboxes. */
  apiAccessToken: string;
  /** Per request (`CHATWOOT_API_TIMEOUT`). */
  timeoutMs: number;
  /**
   * How many times a call that is safe to repeat (reads, updates, filters) is
   * retried on an outage or a 429 before its error reaches the caller. Creates
   * are never retried here: their caller checks first (DESIGN.md, Decisions 4).
   */
  idempotentRetries?: number;
  /** First retry delay; doubles each time, with jitter. */
  retryBaseDelayMs?: number;
  /** Longest `Retry-After` the client waits for itself before handing the 429 to the caller. */
  maxRetryAfterMs?: number;
  /** Keep-alive sockets per Chatwoot host. */
  maxSockets?: number;
}

const ACCOUNT = '/api/v1/accounts/{account_id}';

/** Largest answer read from Chatwoot; a bigger one fails the call (`UND_ERR_RES_EXCEEDED_MAX_SIZE`). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * Network errors that happen before any byte of the request reaches Chatwoot:
 * the connection was never made (refused, no route, DNS, undici's connect
 * timeout), or undici refused the request itself (a closed pool, a bad argument).
 */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_INVALID_ARG',
]);

/**
 * Errors that mean "no (complete) answer in time": the client's own deadline
 * on the whole call (`ETIMEDOUT`, {@link DeadlineError}) and undici's per-phase timers.
 */
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The abort reason when a call's `timeoutMs` runs out, whichever phase it was in (connect, send, headers, body). */
class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
  readonly code = 'ETIMEDOUT';
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Call {
  method: Method;
  /** Route template with `{name}` placeholders, kept for errors and logs. */
  route: string;
  params: Record<string, string | number>;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Safe to send twice with the same effect. */
  idempotent: boolean;
}

/** The daemon's client, configured from `CHATWOOT_*`. */
export function createChatwootClient(config: Readonly<Config>): ChatwootClient {
  return new ChatwootClient({ baseUrl: config.chatwoot.baseUrl, apiAccessToken: config.chatwoot.apiAccessToken, timeoutMs: config.chatwoot.timeoutMs });
}

/**
 * Chatwoot's Application API, typed, over one keep-alive undici `Pool` to
 * Chatwoot's origin. Every failure is a {@link ChatwootError} whose `kind`
 * tells the caller what to do; `reference/chatwoot.md` (shared) documents
 * each endpoint used here. {@link close} ends the pool's connections.
 */
export class ChatwootClient implements ChatwootClientLike {
  private readonly pool: Pool;
  /** The base URL's path (`/chatwoot` for `https://host/chatwoot`), put before every route. */
  private readonly pathPrefix: string;
  private readonly headers: Record<string, string>;
  private readonly jsonHeaders: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxRetryAfterMs: number;

  constructor(options: ChatwootClientOptions) {
    const base = new URL(options.baseUrl);
    this.pathPrefix = base.pathname.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs;
    this.retries = options.idempotentRetries ?? 2;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 250;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 10_000;
    this.headers = { api_access_token: options.apiAccessToken, accept: 'application/json', 'user-agent': 'ponte' };
    // Credentials in the base URL (`https://user:pass@host`, a proxy's basic auth) go in their header, as before.
    if (base.username || base.password) {
      this.headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString('base64')}`;
    }
    this.jsonHeaders = { ...this.headers, 'content-type': 'application/json' };
    // Keep-alive is undici's default (an idle socket is kept 4 s, or as long as
    // the server's `Keep-Alive` says). Its per-phase timers are backstops: the
    // deadline in `once` bounds the whole call. Its connect timeout (10 s) stays:
    // when it fires first, the error says nothing was sent.
    this.pool = new Pool(base.origin, {
      connections: options.maxSockets ?? 64,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      maxResponseSize: MAX_RESPONSE_BYTES,
    });
  }

  /** Ends the keep-alive connections once the calls in flight are done; later calls fail as an outage. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  // ── inboxes ────────────────────────────────────────────────────────────────

  async getInbox(accountId: number, inboxId: number): Promise<CwInbox> {
    return this.call<CwInbox>({ method: 'GET', route: `${ACCOUNT}/inboxes/{id}`, params: { account_id: accountId, id: inboxId }, idempotent: true });
  }

  async listInboxes(accountId: number): Promise<CwInbox[]> {
    const r = await this.call<{ payload: CwInbox[] }>({ method: 'GET', route: `${ACCOUNT}/inboxes`, params: { account_id: accountId }, idempotent: true });
    return r.payload;
  }

  async createInbox(accountId: number, body: CreateInboxBody): Promise<CwInbox> {
    return this.call<CwInbox>({ method: 'POST', route: `${ACCOUNT}/inboxes`, params: { account_id: accountId }, body, idempotent: false });
  }

  async updateInbox(accountId: number, inboxId: number, body: UpdateInboxBody): Promise<CwInbox> {
    return this.call<CwInbox>({ method: 'PATCH', route: `${ACCOUNT}/inboxes/{id}`, params: { account_id: accountId, id: inboxId }, body, idempotent: true });
  }

  async addInboxMembers(accountId: number, inboxId: number, userIds: readonly number[]): Promise<void> {
    // Chatwoot adds only the users not yet members (`params[:user_ids] - current members`): repeatable.
    await this.call<unknown>({ method: 'POST', route: `${ACCOUNT}/inbox_members`, params: { account_id: accountId }, body: { inbox_id: inboxId, user_ids: [...userIds] }, idempotent: true });
  }

  // ── profile ────────────────────────────────────────────────────────────────

  /** The token's user, with a role per account (`GET /api/v1/profile`; an agent bot's token gets {@link ChatwootBotTokenError}). */
  async getProfile(): Promise<CwProfile> {
    return this.call<CwProfile>({ method: 'GET', route: '/api/v1/profile', params: {}, idempotent: true });
  }

  // ── contacts ───────────────────────────────────────────────────────────────

  async getContact(accountId: number, contactId: number): Promise<CwContact> {
    const r = await this.call<{ payload: CwContact }>({
      method: 'GET',
      route: `${ACCOUNT}/contacts/{id}`,
      params: { account_id: accountId, id: contactId },
      idempotent: true,
    });
    return r.payload;
  }

  async searchContacts(accountId: number, query: string, page = 1): Promise<CwContact[]> {
    const r = await this.call<{ payload: CwContact[] }>({
      method: 'GET',
      route: `${ACCOUNT}/contacts/search`,
      params: { account_id: accountId },
      query: { q: query, page },
      idempotent: true,
    });
    return r.payload;
  }

  async filterContacts(accountId: number, clauses: CwFilterClause[], page = 1): Promise<CwContact[]> {
    const r = await this.call<{ payload: CwContact[] }>({
      method: 'POST',
      route: `${ACCOUNT}/contacts/filter`,
      params: { account_id: accountId },
      query: { page },
      body: { payload: clauses },
      idempotent: true,
    });
    return r.payload;
  }

  async createContact(accountId: number, body: CreateContactBody): Promise<{ contact: CwContact; contactInbox: CwContactInbox | null }> {
    const r = await this.call<{ payload: { contact: CwContact; contact_inbox?: CwContactInbox | null } }>({
      method: 'POST',
      route: `${ACCOUNT}/contacts`,
      params: { account_id: accountId },
      body,
      idempotent: false,
    });
    return { contact: r.payload.contact, contactInbox: r.payload.contact_inbox ?? null };
  }

  async updateContact(accountId: number, contactId: number, body: UpdateContactBody): Promise<CwContact> {
    const r = await this.call<{ payload: CwContact }>({
      method: 'PUT',
      route: `${ACCOUNT}/contacts/{id}`,
      params: { account_id: accountId, id: contactId },
      body,
      idempotent: true,
    });
    return r.payload;
  }

  async mergeContacts(accountId: number, baseContactId: number, mergeeContactId: number): Promise<void> {
    await this.call<unknown>({
      method: 'POST',
      route: `${ACCOUNT}/actions/contact_merge`,
      params: { account_id: accountId },
      body: { base_contact_id: baseContactId, mergee_contact_id: mergeeContactId },
      // Merging twice fails (the mergee is gone) but cannot do harm; the
      // caller re-reads instead of repeating.
      idempotent: false,
    });
  }

  async createContactInbox(accountId: number, contactId: number, inboxId: number, sourceId: string): Promise<CwContactInbox> {
    // `first_or_create!` on (contact, inbox, source_id): repeatable.
    return this.call<CwContactInbox>({
      method: 'POST',
      route: `${ACCOUNT}/contacts/{id}/contact_inboxes`,
      params: { account_id: accountId, id: contactId },
      body: { inbox_id: inboxId, source_id: sourceId },
      idempotent: true,
    });
  }

  async findContactBySourceId(accountId: number, inboxId: number, sourceId: string): Promise<CwContact | null> {
    try {
      return await this.call<CwContact>({
        method: 'POST',
        route: `${ACCOUNT}/contact_inboxes/filter`,
        params: { account_id: accountId },
        body: { inbox_id: inboxId, source_id: sourceId },
        idempotent: true,
      });
    } catch (err) {
      if (err instanceof ChatwootNotFoundError) return null;
      throw err;
    }
  }

  async contactLabels(accountId: number, contactId: number): Promise<string[]> {
    const r = await this.call<{ payload?: string[] }>({ method: 'GET', route: `${ACCOUNT}/contacts/{id}/labels`, params: { account_id: accountId, id: contactId }, idempotent: true });
    return r.payload ?? [];
  }

  /** Sets the contact's labels: Chatwoot replaces the whole list with this one. */
  async setContactLabels(accountId: number, contactId: number, labels: readonly string[]): Promise<string[]> {
    const r = await this.call<{ payload?: string[] }>({
      method: 'POST',
      route: `${ACCOUNT}/contacts/{id}/labels`,
      params: { account_id: accountId, id: contactId },
      body: { labels: [...labels] },
      idempotent: true,
    });
    return r.payload ?? [];
  }

  // ── conversations ──────────────────────────────────────────────────────────

  async listContactConversations(accountId: number, contactId: number): Promise<CwConversation[]> {
    const r = await this.call<{ payload: CwConversation[] }>({
      method: 'GET',
      route: `${ACCOUNT}/contacts/{id}/conversations`,
      params: { account_id: accountId, id: contactId },
      idempotent: true,
    });
    return r.payload;
  }

  async getConversation(accountId: number, conversationId: number): Promise<CwConversation> {
    return this.call<CwConversation>({
      method: 'GET',
      route: `${ACCOUNT}/conversations/{conversation_id}`,
      params: { account_id: accountId, conversation_id: conversationId },
      idempotent: true,
    });
  }

  async createConversation(accountId: number, body: CreateConversationBody): Promise<CwConversation> {
    return this.call<CwConversation>({ method: 'POST', route: `${ACCOUNT}/conversations`, params: { account_id: accountId }, body, idempotent: false });
  }

  // ── messages ───────────────────────────────────────────────────────────────

  async createMessage(accountId: number, conversationId: number, body: CreateMessageBody): Promise<CwMessage> {
    return this.call<CwMessage>({
      method: 'POST',
      route: `${ACCOUNT}/conversations/{conversation_id}/messages`,
      params: { account_id: accountId, conversation_id: conversationId },
      body,
      idempotent: false,
    });
  }

  async createMessageWithAttachments(
    accountId: number,
    conversationId: number,
    body: CreateMessageBody,
    attachments: readonly MessageAttachment[],
  ): Promise<CwMessage> {
    const form = new FormData();
    if (body.content !== undefined) form.append('content', body.content);
    form.append('message_type', body.message_type);
    if (body.content_type !== undefined) form.append('content_type', body.content_type);
    form.append('private', String(body.private ?? false));
    if (body.source_id !== undefined) form.append('source_id', body.source_id);
    if (body.content_attributes !== undefined) form.append('content_attributes', JSON.stringify(body.content_attributes));
    if (body.external_created_at !== undefined) form.append('external_created_at', String(body.external_created_at));
    if (body.is_voice_message) form.append('is_voice_message', 'true');
    for (const a of attachments) {
      // A spooled file becomes a file-backed Blob: undici streams it from disk.
      const blob = 'file' in a ? await openAsBlob(a.file, { type: a.contentType }) : new Blob([a.data], { type: a.contentType });
      form.append('attachments[]', blob, a.fileName);
    }
    return this.call<CwMessage>({
      method: 'POST',
      route: `${ACCOUNT}/conversations/{conversation_id}/messages`,
      params: { account_id: accountId, conversation_id: conversationId },
      body: form,
      idempotent: false,
    });
  }

  async listMessages(accountId: number, conversationId: number, cursor: { before?: number; after?: number } = {}): Promise<CwMessage[]> {
    const r = await this.call<{ payload: CwMessage[] }>({
      method: 'GET',
      route: `${ACCOUNT}/conversations/{conversation_id}/messages`,
      params: { account_id: accountId, conversation_id: conversationId },
      query: { before: cursor.before, after: cursor.after },
      idempotent: true,
    });
    return r.payload;
  }

  async updateMessageStatus(
    accountId: number,
    conversationId: number,
    messageId: number,
    status: CwMessageStatus,
    externalError?: string,
  ): Promise<CwMessage> {
    return this.call<CwMessage>({
      method: 'PATCH',
      route: `${ACCOUNT}/conversations/{conversation_id}/messages/{message_id}`,
      params: { account_id: accountId, conversation_id: conversationId, message_id: messageId },
      body: { status, ...(externalError !== undefined ? { external_error: externalError } : {}) },
      idempotent: true,
    });
  }

  async deleteMessage(accountId: number, conversationId: number, messageId: number): Promise<void> {
    await this.call<unknown>({
      method: 'DELETE',
      route: `${ACCOUNT}/conversations/{conversation_id}/messages/{message_id}`,
      params: { account_id: accountId, conversation_id: conversationId, message_id: messageId },
      idempotent: true,
    });
  }

  // ── transport ──────────────────────────────────────────────────────────────

  private async call<T>(c: Call): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<T>(c);
      } catch (err) {
        const e = err as ChatwootError;
        if (!c.idempotent || !e.retryable || attempt > this.retries) throw e;
        const retryAfter = e instanceof ChatwootRateLimitedError ? e.retryAfterMs : undefined;
        if (retryAfter !== undefined && retryAfter > this.maxRetryAfterMs) throw e;
        await sleep(retryAfter ?? backoffDelayMs(attempt, this.retryBaseDelayMs, this.retryBaseDelayMs * 16));
      }
    }
  }

  private async once<T>(c: Call): Promise<T> {
    const path = this.pathPrefix + expand(c.route, c.params) + (c.query ? queryString(c.query) : '');
    // A FormData body gets its multipart content-type (and length) from undici.
    const form = c.body instanceof FormData;
    const controller = new AbortController();
    const deadline = setTimeout(() => controller.abort(new DeadlineError(`no complete answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    let status: number;
    let retryAfter: string | string[] | undefined;
    let data: unknown;
    try {
      const response = await this.pool.request({
        method: c.method,
        path,
        headers: c.body === undefined || form ? this.headers : this.jsonHeaders,
        body: c.body === undefined ? null : form ? (c.body as FormData) : JSON.stringify(c.body),
        signal: controller.signal,
      });
      status = response.statusCode;
      retryAfter = response.headers['retry-after'];
      // Read whole, inside the deadline: a slow-trickling answer also ends at `timeoutMs`.
      data = parseBody(await response.body.text());
    } catch (err) {
      throw this.networkError(c, err);
    } finally {
      clearTimeout(deadline);
    }
    if (status >= 200 && status < 300) return data as T;
    throw this.statusError(c, status, data, Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
  }

  /**
   * No answer: an outage unless a create may have reached Chatwoot. Only a
   * failure before the connection carried the request ({@link NOT_SENT_CODES})
   * clears a create; a timeout or a broken connection (`UND_ERR_SOCKET`,
   * `ECONNRESET`, `UND_ERR_ABORTED`, an unparsable answer) after it may not.
   */
  private networkError(c: Call, err: unknown): ChatwootError {
    const code = errorCode(err);
    const details = { method: c.method, route: c.route, networkCode: code, cause: err };
    const reason = `Chatwoot ${c.method} ${c.route}: ${TIMEOUT_CODES.has(code) ? 'timed out' : `connection failed (${code})`}`;
    if (NOT_SENT_CODES.has(code) || c.idempotent) return new ChatwootUnavailableError(reason, details);
    return new ChatwootLostResponseError(`${reason}; the create may have been applied`, details);
  }

  private statusError(c: Call, status: number, data: unknown, retryAfter: string | undefined): ChatwootError {
    const what = describeBody(data);
    const message = `Chatwoot ${c.method} ${c.route} answered ${status}${what.text ? `: ${what.text}` : ''}`;
    const details = { method: c.method, route: c.route, status };
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(retryAfter);
      return new ChatwootRateLimitedError(message, { ...details, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
    }
    if (status >= 500) {
      return c.idempotent ? new ChatwootUnavailableError(message, details) : new ChatwootLostResponseError(`${message}; the create may have been applied`, details);
    }
    // Chatwoot tells a bot's token from a bad one only by the 401's text: read here, once, into a type.
    if (status === 401 && /not authorized for bots/i.test(what.text)) return new ChatwootBotTokenError(message, details);
    if (status === 401) return new ChatwootUnauthorizedError(message, details);
    if (status === 404) return new ChatwootNotFoundError(message, details);
    // Chatwoot tells its per-conversation message limit only by the 422's text: read here, once, into a type.
    if (status === 422 && /too many messages/i.test(what.text)) return new ChatwootConversationLimitError(message, { ...details, attributes: what.attributes });
    if (status === 422) return new ChatwootUnprocessableError(message, { ...details, attributes: what.attributes });
    if (status === 408) return new ChatwootUnavailableError(message, details);
    return new ChatwootRejectedError(message, details);
  }
}

function expand(route: string, params: Record<string, string | number>): string {
  return route.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params[name];
    if (v === undefined) throw new TypeError(`missing path parameter ${name} for ${route}`);
    return encodeURIComponent(String(v));
  });
}

/** `?a=1&b=2` from the defined entries, or `''` when none is. */
function queryString(query: Record<string, string | number | undefined>): string {
  let out = '';
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined) out += `${out ? '&' : '?'}${encodeURIComponent(k)}=${encodeURIComponent(v)}`;
  }
  return out;
}

/** An answer's body: its JSON when it parses, else its text (rack-attack's 429, an HTML error page), `''` when empty. */
function parseBody(text: string): unknown {
  const json = text === '' ? undefined : parseJson(text);
  return json === undefined ? text : json;
}

/**
 * The code that names a network failure: undici's own (`UND_ERR_*`), or the
 * system error's (`ECONNREFUSED`…), which undici passes through or another
 * layer may wrap in `cause`; an `AggregateError` (every address of a host
 * refused) carries it, or its first error does.
 */
function errorCode(err: unknown, depth = 0): string {
  if (!(err instanceof Error)) return 'ERR_UNKNOWN';
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code !== '') return code;
  if (err instanceof AggregateError && err.errors.length > 0 && depth < 4) return errorCode(err.errors[0], depth + 1);
  if (err.cause !== undefined && depth < 4) return errorCode(err.cause, depth + 1);
  return 'ERR_UNKNOWN';
}

/** Chatwoot's error bodies: `{error}`, `{message, attributes}`, or rack-attack's plain text. */
function describeBody(data: unknown): { text: string; attributes: string[] } {
  if (typeof data === 'string') return { text: data.trim().slice(0, 300), attributes: [] };
  if (data && typeof data === 'object') {
    const o = data as { error?: unknown; message?: unknown; attributes?: unknown };
    const text = typeof o.message === 'string' ? o.message : typeof o.error === 'string' ? o.error : '';
    const attributes = Array.isArray(o.attributes) ? o.attributes.filter((a): a is string => typeof a === 'string') : [];
    return { text: text.slice(0, 300), attributes };
  }
  return { text: '', attributes: [] };
}

/** `Retry-After` as seconds or an HTTP date, in milliseconds from now. */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds * 1000));
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
