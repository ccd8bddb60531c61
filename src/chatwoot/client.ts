/** The typed client of Chatwoot's Application API that the daemon calls. */
import { openAsBlob } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse, isAxiosError } from 'axios';
import type { Config } from '../config/schema.js';
import { backoffDelayMs } from '../lib/backoff.js';
import {
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
  CreateMessageBody,
  CwContact,
  CwContactInbox,
  CwConversation,
  CwFilterClause,
  CwInbox,
  CwMessage,
  CwMessageStatus,
  MessageAttachment,
  UpdateContactBody,
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

/** Network errors that happen before any byte of the request reaches Chatwoot. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_INVALID_URL', 'ERR_BAD_OPTION_VALUE']);

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
 * Chatwoot's Application API, typed, over one keep-alive axios instance.
 * Every failure is a {@link ChatwootError} whose `kind` tells the caller what
 * to do; `reference/chatwoot.md` (shared) documents each endpoint used here.
 */
export class ChatwootClient implements ChatwootClientLike {
  private readonly http: AxiosInstance;
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxRetryAfterMs: number;

  constructor(options: ChatwootClientOptions) {
    const maxSockets = options.maxSockets ?? 64;
    this.retries = options.idempotentRetries ?? 2;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 250;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 10_000;
    this.http = axios.create({
      baseURL: options.baseUrl.replace(/\/+$/, ''),
      timeout: options.timeoutMs,
      headers: { api_access_token: options.apiAccessToken, Accept: 'application/json' },
      httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
      // Statuses are classified here, not thrown by axios.
      validateStatus: () => true,
      maxRedirects: 0,
      transitional: { clarifyTimeoutError: true },
      maxBodyLength: 64 * 1024 * 1024,
      maxContentLength: 64 * 1024 * 1024,
    });
  }

  // ── inboxes ────────────────────────────────────────────────────────────────

  async getInbox(accountId: number, inboxId: number): Promise<CwInbox> {
    return this.call<CwInbox>({ method: 'GET', route: `${ACCOUNT}/inboxes/{id}`, params: { account_id: accountId, id: inboxId }, idempotent: true });
  }

  async listInboxes(accountId: number): Promise<CwInbox[]> {
    const r = await this.call<{ payload: CwInbox[] }>({ method: 'GET', route: `${ACCOUNT}/inboxes`, params: { account_id: accountId }, idempotent: true });
    return r.payload;
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
    form.append('private', String(body.private ?? false));
    if (body.source_id !== undefined) form.append('source_id', body.source_id);
    if (body.content_attributes !== undefined) form.append('content_attributes', JSON.stringify(body.content_attributes));
    if (body.external_created_at !== undefined) form.append('external_created_at', String(body.external_created_at));
    if (body.is_voice_message) form.append('is_voice_message', 'true');
    for (const a of attachments) {
      // A spooled file becomes a file-backed Blob: axios streams it from disk.
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
    const url = expand(c.route, c.params);
    let response: AxiosResponse<unknown>;
    try {
      response = await this.http.request({
        method: c.method,
        url,
        ...(c.query ? { params: definedOnly(c.query) } : {}),
        ...(c.body !== undefined ? { data: c.body } : {}),
      });
    } catch (err) {
      throw this.networkError(c, err);
    }
    if (response.status >= 200 && response.status < 300) return response.data as T;
    throw this.statusError(c, response);
  }

  private networkError(c: Call, err: unknown): ChatwootError {
    const details = { method: c.method, route: c.route, cause: err };
    const code = isAxiosError(err) ? (err.code ?? 'ERR_NETWORK') : 'ERR_UNKNOWN';
    const reason = `Chatwoot ${c.method} ${c.route}: ${code === 'ETIMEDOUT' || code === 'ECONNABORTED' ? 'timed out' : `connection failed (${code})`}`;
    if (NOT_SENT_CODES.has(code) || c.idempotent) return new ChatwootUnavailableError(reason, details);
    return new ChatwootLostResponseError(`${reason}; the create may have been applied`, details);
  }

  private statusError(c: Call, response: AxiosResponse<unknown>): ChatwootError {
    const status = response.status;
    const what = describeBody(response.data);
    const message = `Chatwoot ${c.method} ${c.route} answered ${status}${what.text ? `: ${what.text}` : ''}`;
    const details = { method: c.method, route: c.route, status };
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
      return new ChatwootRateLimitedError(message, { ...details, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
    }
    if (status >= 500) {
      return c.idempotent ? new ChatwootUnavailableError(message, details) : new ChatwootLostResponseError(`${message}; the create may have been applied`, details);
    }
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

function definedOnly(query: Record<string, string | number | undefined>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(query)) if (v !== undefined) out[k] = v;
  return out;
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
