/**
 * A contract-checked double of Chatwoot's Application API for tests and
 * benchmarks: a real HTTP server on a free port, Chatwoot's rules in memory
 * (`store.ts`), every request checked against Chatwoot's own OpenAPI files
 * (`contract.ts`), faults on demand (slow answers, failures for a window or a
 * share of calls, lost responses), call counting, and signed webhooks.
 */
import { createHmac, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkParams, Contract, describeErrors, type Operation } from './contract.js';
import {
  type AccountRecord,
  type ContactInboxRecord,
  type ConversationStatus,
  type CwContactRecord,
  type CwConversationRecord,
  type CwMessageRecord,
  type MessageType,
  HttpAnswer,
  NotFound,
  RecordInvalid,
  Store,
} from './store.js';

export type { CwContactRecord, CwConversationRecord, CwMessageRecord } from './store.js';

export interface ChatwootDoubleOptions {
  /** Seed of the fault dice (fixed: the same run fails the same calls). */
  seed?: number;
  /** Post webhooks to inbox `webhook_url`s and account webhooks (default true). */
  webhooksEnabled?: boolean;
  /** Chatwoot's `CONVERSATION_MESSAGE_PER_MINUTE_LIMIT` (default 200). */
  messagesPerMinutePerConversation?: number;
}

export interface FailOptions {
  status: number;
  /** Share of matching calls that fail (seeded). */
  ratio?: number;
  /** Every matching call fails for this long from now. */
  forMs?: number;
  /** Adds `Retry-After: <s>` to a 429 (Chatwoot itself never sends one). */
  retryAfterS?: number;
  /** Only this route (`"POST /api/v1/accounts/{account_id}/…"`). */
  route?: string;
}

export interface LoseOptions {
  ratio: number;
  /** After applying the request: answer `status`, never answer, or break the connection. */
  mode: 'status' | 'timeout' | 'reset';
  status?: number;
  route?: string;
}

export interface WebhookDelivery {
  url: string;
  event: string;
  status: number | 'error';
}

export interface ChatwootDouble {
  url: string;
  token: string;
  addAccount(): { id: number };
  addInbox(o: { accountId: number; name?: string; webhookUrl?: string; secret?: string; lockToSingleConversation?: boolean }): { id: number; secret: string };
  addAccountWebhook(o: { accountId: number; url: string; subscriptions: string[]; secret?: string }): { id: number };
  contacts(accountId: number): CwContactRecord[];
  contactInboxes(accountId: number): ContactInboxRecord[];
  conversations(accountId: number): CwConversationRecord[];
  messages(accountId: number, conversationId: number): CwMessageRecord[];
  deleteConversation(accountId: number, conversationId: number): void;
  setConversationStatus(accountId: number, conversationId: number, status: ConversationStatus): void;
  /** An agent's reply written in the dashboard (fires `message_created`). */
  createAgentMessage(accountId: number, conversationId: number, o: { content: string; private?: boolean }): CwMessageRecord;
  /** Every route served, as `METHOD /spec/template`. */
  readonly routes: string[];
  /** Requests Chatwoot would refuse (unknown route, bad parameters, body against the spec), one line each. */
  readonly violations: string[];
  calls: { count(): number; reset(): void; byRoute(): Record<string, number> };
  faults: {
    fail(o: FailOptions): () => void;
    loseResponses(o: LoseOptions): () => void;
    slow(ms: number): () => void;
    clear(): void;
    /** How many answers each fault mode has produced so far. */
    injected(): { failed: number; rateLimited: number; lost: number };
  };
  webhookDeliveries(): WebhookDelivery[];
  close(): Promise<void>;
}

type Params = Record<string, string>;

interface Ctx {
  account: AccountRecord;
  params: Params;
  query: URLSearchParams;
  body: Record<string, unknown>;
  /** Multipart files (`attachments[]`). */
  files: Array<{ name: string; type: string; data: Buffer }>;
}

type Handler = (ctx: Ctx) => { status?: number; body: unknown };

interface Route {
  method: string;
  template: string;
  regex: RegExp;
  names: string[];
  handler: Handler;
  op: Operation;
}

const A = '/api/v1/accounts/{account_id}';

/** mulberry32: a tiny seeded PRNG, so fault runs are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let sharedContract: Contract | undefined;

export async function startChatwootDouble(options: ChatwootDoubleOptions = {}): Promise<ChatwootDouble> {
  const contract = (sharedContract ??= new Contract());
  const store = new Store();
  const token = `cw-test-${randomUUID()}`;
  const random = prng(options.seed ?? 1);
  const perMinute = options.messagesPerMinutePerConversation ?? 200;
  const webhooksEnabled = options.webhooksEnabled ?? true;
  const violations: string[] = [];
  const counts = new Map<string, number>();
  const deliveries: WebhookDelivery[] = [];
  const pendingWebhooks = new Set<Promise<void>>();
  let baseUrl = '';

  interface FailFault extends FailOptions {
    until?: number;
  }
  let failFaults: FailFault[] = [];
  let loseFaults: LoseOptions[] = [];
  let latencies: number[] = [];
  const injected = { failed: 0, rateLimited: 0, lost: 0 };
  /** Pending `slow` delays, cleared on close so no timer outlives the double. */
  const delays = new Set<NodeJS.Timeout>();

  // ── webhooks ───────────────────────────────────────────────────────────────

  function emit(account: AccountRecord, inboxId: number, event: string, payload: Record<string, unknown>, message?: CwMessageRecord): void {
    if (!webhooksEnabled) return;
    const inbox = store.inboxes.get(inboxId);
    const targets: Array<{ url: string; secret?: string; apiInbox: boolean }> = [];
    if (inbox?.webhook_url) targets.push({ url: inbox.webhook_url, secret: inbox.secret, apiInbox: true });
    for (const w of account.webhooks) if (w.subscriptions.includes(event)) targets.push({ url: w.url, ...(w.secret ? { secret: w.secret } : {}), apiInbox: false });
    for (const t of targets) {
      const p = deliver(t.url, t.secret, event, payload).then((status) => {
        deliveries.push({ url: t.url, event, status });
        // Chatwoot marks the message failed when its inbox webhook fails, and never retries.
        if (t.apiInbox && message && status !== 'error' && status >= 200 && status < 300) return;
        if (t.apiInbox && message) {
          message.status = 'failed';
          message.content_attributes = { ...message.content_attributes, external_error: status === 'error' ? 'webhook delivery failed' : `webhook answered ${status}` };
        }
      });
      pendingWebhooks.add(p);
      void p.finally(() => pendingWebhooks.delete(p));
    }
  }

  async function deliver(url: string, secret: string | undefined, event: string, payload: Record<string, unknown>): Promise<number | 'error'> {
    const body = JSON.stringify({ ...payload, event });
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json', 'x-chatwoot-delivery': randomUUID() };
    if (secret) {
      const ts = String(Math.floor(Date.now() / 1000));
      headers['x-chatwoot-timestamp'] = ts;
      headers['x-chatwoot-signature'] = `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;
    }
    try {
      const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 'error';
    }
  }

  function messageEvent(account: AccountRecord, m: CwMessageRecord, event: 'message_created' | 'message_updated'): void {
    if (!webhooksEnabled || m.message_type === 'activity') return;
    const { event: _e, ...payload } = store.messageWebhookJson(account, m, event);
    emit(account, m.inbox_id, event, payload, m);
  }

  // ── handlers ───────────────────────────────────────────────────────────────

  const num = (v: string | undefined): number => Number(v);
  const page = (q: URLSearchParams): number => Math.max(1, Number(q.get('page') ?? 1) || 1);

  function createMessage(account: AccountRecord, conv: CwConversationRecord, body: Record<string, unknown>, files: Ctx['files']): CwMessageRecord {
    const type = (body.message_type ?? 'outgoing') as MessageType;
    if (store.messagesSince(account, conv.id, Math.floor(Date.now() / 1000) - 60) >= perMinute) throw new HttpAnswer(422, { error: 'Validation failed: Too many messages' });
    const content = typeof body.content === 'string' ? body.content : null;
    if (content !== null && content.length > 150_000) throw new HttpAnswer(422, { error: 'Validation failed: Content is too long (maximum is 150000 characters)' });
    if (files.length > 15) throw new HttpAnswer(422, { error: 'Validation failed: Attachments Too many attachments. Maximum allowed is 15' });
    const attrs = (body.content_attributes && typeof body.content_attributes === 'object' ? body.content_attributes : {}) as Record<string, unknown>;
    if (body.external_created_at !== undefined) attrs.external_created_at = body.external_created_at;
    const m = store.addMessage(account, conv, {
      content,
      message_type: type,
      content_type: typeof body.content_type === 'string' ? body.content_type : 'text',
      private: body.private === true || body.private === 'true',
      source_id: typeof body.source_id === 'string' ? body.source_id : null,
      content_attributes: attrs,
      attachments: files.map((f) => store.newAttachment(f.type, f.name, f.data, baseUrl)),
      sender: type === 'incoming' ? { type: 'contact', id: conv.contact_id } : { type: 'user', id: store.user.id },
      ...(typeof body.echo_id === 'string' ? { echo_id: body.echo_id } : {}),
    });
    messageEvent(account, m, 'message_created');
    return m;
  }

  const handlers: Array<[string, string, Handler]> = [
    ['GET', `${A}/inboxes`, ({ account }) => ({ body: { payload: [...store.inboxes.values()].filter((i) => i.account_id === account.id).map((i) => store.inboxJson(i)) } })],
    ['GET', `${A}/inboxes/{id}`, ({ account, params }) => ({ body: store.inboxJson(store.inbox(account, num(params.id))) })],

    ['GET', `${A}/contacts/{id}`, ({ account, params }) => ({ body: { payload: store.contactJson(account, store.contact(account, num(params.id))) } })],
    [
      'GET',
      `${A}/contacts/search`,
      ({ account, query }) => {
        const q = query.get('q') ?? '';
        const ql = q.toLowerCase();
        const hits = [...account.contacts.values()].filter(
          (c) => c.name?.toLowerCase().includes(ql) || c.email?.toLowerCase().includes(ql) || c.phone_number?.toLowerCase().includes(ql) || c.identifier?.includes(q),
        );
        const p = page(query);
        const slice = hits.slice((p - 1) * 15, p * 15);
        const withInboxes = query.get('include_contact_inboxes') !== 'false';
        return { body: { meta: { count: hits.length, current_page: String(p), has_more: hits.length > p * 15 }, payload: slice.map((c) => store.contactJson(account, c, withInboxes)) } };
      },
    ],
    [
      'POST',
      `${A}/contacts/filter`,
      ({ account, query, body }) => {
        const clauses = body.payload as Array<{ attribute_key: string; filter_operator: string; values: unknown[]; query_operator?: string | null }>;
        const hits = [...account.contacts.values()].filter((c) => matchClauses(c, clauses));
        const p = page(query);
        return { body: { meta: { count: hits.length, current_page: p }, payload: hits.slice((p - 1) * 15, p * 15).map((c) => store.contactJson(account, c)) } };
      },
    ],
    [
      'POST',
      `${A}/contacts`,
      ({ account, body }) => {
        const { contact, contactInbox } = store.createContact(account, body);
        const inbox = contactInbox ? store.inboxes.get(contactInbox.inbox_id) : undefined;
        return { body: { payload: { contact: store.contactJson(account, contact), contact_inbox: contactInbox ? { inbox: inbox ? store.inboxJson(inbox) : null, source_id: contactInbox.source_id } : null } } };
      },
    ],
    ['PUT', `${A}/contacts/{id}`, ({ account, params, body }) => ({ body: { payload: store.contactJson(account, store.updateContact(account, store.contact(account, num(params.id)), body)) } })],
    [
      'POST',
      `${A}/actions/contact_merge`,
      ({ account, body }) => ({ body: store.contactJson(account, store.merge(account, Number(body.base_contact_id), Number(body.mergee_contact_id))) }),
    ],
    [
      'POST',
      `${A}/contacts/{id}/contact_inboxes`,
      ({ account, params, body }) => {
        const contact = store.contact(account, num(params.id));
        const inbox = store.inbox(account, Number(body.inbox_id));
        const ci = store.contactInboxFor(account, contact.id, inbox.id, typeof body.source_id === 'string' ? body.source_id : undefined, 'raise500');
        return { body: { source_id: ci.source_id, inbox: { id: inbox.id, avatar_url: '', channel_id: inbox.id, name: inbox.name, channel_type: 'Channel::Api', provider: null } } };
      },
    ],
    [
      'POST',
      `${A}/contact_inboxes/filter`,
      ({ account, body }) => {
        const ci = account.contactInboxes.find((x) => x.inbox_id === Number(body.inbox_id) && x.source_id === body.source_id);
        const contact = ci ? account.contacts.get(ci.contact_id) : undefined;
        if (!contact) return { status: 404, body: '' };
        return { body: store.contactJson(account, contact) };
      },
    ],
    [
      'GET',
      `${A}/contacts/{id}/conversations`,
      ({ account, params }) => {
        const contact = store.contact(account, num(params.id));
        const convs = [...account.conversations.values()]
          .filter((c) => c.contact_id === contact.id)
          .sort((x, y) => y.last_activity_at - x.last_activity_at || y.id - x.id)
          .slice(0, 20);
        return { body: { payload: convs.map((c) => store.conversationJson(account, c)) } };
      },
    ],
    [
      'GET',
      `${A}/conversations`,
      ({ account, query }) => {
        const status = query.get('status') ?? 'open';
        const inboxId = query.get('inbox_id');
        const sourceId = query.get('source_id');
        const all = [...account.conversations.values()].filter((c) => {
          if (status !== 'all' && c.status !== status) return false;
          if (inboxId && c.inbox_id !== Number(inboxId)) return false;
          if (sourceId && account.contactInboxes.find((ci) => ci.id === c.contact_inbox_id)?.source_id !== sourceId) return false;
          return true;
        });
        all.sort((x, y) => y.last_activity_at - x.last_activity_at);
        const p = page(query);
        return {
          body: {
            data: {
              meta: { mine_count: 0, assigned_count: 0, unassigned_count: all.length, all_count: all.length },
              payload: all.slice((p - 1) * 25, p * 25).map((c) => store.conversationJson(account, c)),
            },
          },
        };
      },
    ],
    [
      'POST',
      `${A}/conversations`,
      ({ account, body }) => {
        let ci: ContactInboxRecord;
        if (body.inbox_id !== undefined && body.contact_id !== undefined) {
          const inbox = store.inbox(account, Number(body.inbox_id));
          const contact = store.contact(account, Number(body.contact_id));
          // ContactInboxBuilder: a missing source_id makes a new contact inbox every time.
          ci = store.contactInboxFor(account, contact.id, inbox.id, typeof body.source_id === 'string' ? body.source_id : undefined, 'raise422');
        } else {
          const found = account.contactInboxes.find((x) => x.source_id === body.source_id);
          if (!found) throw new NotFound();
          ci = found;
        }
        const inbox = store.inbox(account, ci.inbox_id);
        const conv = store.createConversation(account, inbox, ci, body.status as ConversationStatus | undefined);
        const first = body.message as Record<string, unknown> | undefined;
        if (first && typeof first === 'object') createMessage(account, conv, first, []);
        if (webhooksEnabled) emit(account, conv.inbox_id, 'conversation_created', store.conversationWebhookJson(account, conv));
        return { body: store.conversationJson(account, conv) };
      },
    ],
    ['GET', `${A}/conversations/{conversation_id}`, ({ account, params }) => ({ body: store.conversationJson(account, store.conversation(account, num(params.conversation_id))) })],
    [
      'POST',
      `${A}/conversations/{conversation_id}/toggle_status`,
      ({ account, params, body }) => {
        const conv = store.conversation(account, num(params.conversation_id));
        const next = (body.status as ConversationStatus | undefined) ?? (conv.status === 'open' ? 'resolved' : 'open');
        conv.status = next;
        if (webhooksEnabled) emit(account, conv.inbox_id, 'conversation_status_changed', { ...store.conversationWebhookJson(account, conv), changed_attributes: null });
        return { body: { meta: {}, payload: { success: true, conversation_id: conv.id, current_status: conv.status, snoozed_until: null } } };
      },
    ],
    [
      'POST',
      `${A}/conversations/{conversation_id}/messages`,
      ({ account, params, body, files }) => {
        const conv = store.conversation(account, num(params.conversation_id));
        return { body: store.messageJson(createMessage(account, conv, body, files)) };
      },
    ],
    [
      'GET',
      `${A}/conversations/{conversation_id}/messages`,
      ({ account, params, query }) => {
        const conv = store.conversation(account, num(params.conversation_id));
        const all = store.conversationMessages(account, conv.id);
        const before = query.get('before') ? Number(query.get('before')) : undefined;
        const after = query.get('after') ? Number(query.get('after')) : undefined;
        let out: CwMessageRecord[];
        if (before !== undefined && after !== undefined) out = all.filter((m) => m.id > after && m.id < before).slice(0, 1000);
        else if (after !== undefined) out = all.filter((m) => m.id > after).slice(0, 100);
        else if (before !== undefined) out = all.filter((m) => m.id < before).slice(-20);
        else out = all.slice(-20);
        return { body: { meta: {}, payload: out.map((m) => store.messageJson(m)) } };
      },
    ],
    [
      'PATCH',
      `${A}/conversations/{conversation_id}/messages/{message_id}`,
      ({ account, params, body }) => {
        const conv = store.conversation(account, num(params.conversation_id));
        const m = store.message(account, conv.id, num(params.message_id));
        const status = body.status as CwMessageRecord['status'] | undefined;
        const known = status === 'sent' || status === 'delivered' || status === 'read' || status === 'failed';
        // Messages::StatusUpdateService: read never goes back to delivered; unknown statuses are ignored.
        if (known && !(m.status === 'read' && status === 'delivered')) {
          m.status = status;
          const { external_error: _old, ...rest } = m.content_attributes;
          m.content_attributes = status === 'failed' && typeof body.external_error === 'string' ? { ...rest, external_error: body.external_error } : rest;
          messageEvent(account, m, 'message_updated');
        }
        return { body: store.messageJson(m) };
      },
    ],
    [
      'DELETE',
      `${A}/conversations/{conversation_id}/messages/{message_id}`,
      ({ account, params }) => {
        const conv = store.conversation(account, num(params.conversation_id));
        const m = store.message(account, conv.id, num(params.message_id));
        m.content = 'This message was deleted';
        m.content_type = 'text';
        m.content_attributes = { deleted: true };
        m.attachments = [];
        messageEvent(account, m, 'message_updated');
        return { body: store.messageJson(m) };
      },
    ],
  ];

  const routes: Route[] = handlers.map(([method, template, handler]) => {
    const op = contract.operation(method, template);
    if (!op) throw new Error(`the double serves ${method} ${template}, which Chatwoot's spec does not define`);
    const names: string[] = [];
    const regex = new RegExp(`^${template.replace(/\{(\w+)\}/g, (_, n: string) => (names.push(n), '([^/]+)'))}$`);
    return { method, template, regex, names, handler, op };
  });

  function match(method: string, path: string): { route: Route; params: Params } | undefined {
    let best: { route: Route; params: Params } | undefined;
    for (const route of routes) {
      if (route.method !== method) continue;
      const m = route.regex.exec(path);
      if (!m) continue;
      if (best && best.route.names.length <= route.names.length) continue;
      const params: Params = {};
      route.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)));
      best = { route, params };
    }
    return best;
  }

  // ── HTTP ───────────────────────────────────────────────────────────────────

  function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.destroyed) return;
    if (typeof body === 'string') {
      res.writeHead(status, { 'content-type': 'text/plain', ...headers });
      res.end(body);
    } else {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    }
  }

  function refuse(res: http.ServerResponse, status: number, line: string): void {
    violations.push(line);
    send(res, status, { error: line });
  }

  async function readBody(req: http.IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async function parseBody(req: http.IncomingMessage, raw: Buffer, op: Operation): Promise<{ body: Record<string, unknown>; files: Ctx['files'] } | string> {
    const ct = String(req.headers['content-type'] ?? '');
    if (raw.length === 0) return op.body?.required ? 'request body is required' : { body: {}, files: [] };
    if (ct.startsWith('multipart/form-data')) {
      if (!op.body?.multipart) return 'multipart body not accepted here';
      const form = await new Response(new Uint8Array(raw), { headers: { 'content-type': ct } }).formData();
      const body: Record<string, unknown> = {};
      const files: Ctx['files'] = [];
      for (const [k, v] of form.entries()) {
        if (typeof v === 'string') {
          const bracket = /^content_attributes\[(\w+)\]$/.exec(k);
          if (bracket) body.content_attributes = { ...(body.content_attributes ?? {}), [bracket[1]!]: v };
          else if (k === 'content_attributes') {
            try {
              body.content_attributes = JSON.parse(v) as unknown;
            } catch {
              return 'content_attributes is not JSON';
            }
          } else body[k] = v;
        } else if (k === 'attachments[]') {
          files.push({ name: v.name, type: v.type || 'application/octet-stream', data: Buffer.from(await v.arrayBuffer()) });
        }
      }
      if (body.message_type !== undefined && body.message_type !== 'incoming' && body.message_type !== 'outgoing') return `message_type ${JSON.stringify(body.message_type)} is not allowed`;
      return { body, files };
    }
    if (!ct.includes('application/json')) return `unsupported content type ${ct || '(none)'}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      return 'body is not valid JSON';
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return 'body must be a JSON object';
    const validate = op.body?.json;
    if (validate && !validate(parsed)) return describeErrors(validate);
    return { body: parsed as Record<string, unknown>, files: [] };
  }

  function failFault(key: string): FailFault | undefined {
    const now = Date.now();
    failFaults = failFaults.filter((f) => f.until === undefined || f.until > now);
    for (const f of failFaults) {
      if (f.route && f.route !== key) continue;
      if (f.ratio === undefined || random() < f.ratio) return f;
    }
    return undefined;
  }

  function loseFault(key: string, method: string): LoseOptions | undefined {
    if (method === 'GET') return undefined;
    for (const f of loseFaults) {
      if (f.route && f.route !== key) continue;
      if (random() < f.ratio) return f;
    }
    return undefined;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://double');
    const raw = await readBody(req);
    const found = match(method, url.pathname);
    const key = found ? `${method} ${found.route.template}` : `${method} ${url.pathname}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const delay = latencies.reduce((s, l) => s + l, 0);
    if (delay > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          delays.delete(timer);
          resolve();
        }, delay);
        delays.add(timer);
      });
    }

    if (!found) return refuse(res, 404, `${method} ${url.pathname}: no such route in Chatwoot's API`);
    if (req.headers.api_access_token !== token) return send(res, 401, { error: 'Invalid Access Token' });

    const fault = failFault(key);
    if (fault) {
      if (fault.status === 429) injected.rateLimited++;
      else injected.failed++;
      if (fault.status === 429) return send(res, 429, 'Retry later\n', fault.retryAfterS !== undefined ? { 'retry-after': String(fault.retryAfterS) } : {});
      return send(res, fault.status, { error: `injected ${fault.status}` });
    }

    const { route, params } = found;
    const paramProblems = checkParams(route.op, params, url.searchParams);
    if (paramProblems.length > 0) return refuse(res, 422, `${key}: ${paramProblems.join('; ')}`);
    const parsed = await parseBody(req, raw, route.op);
    if (typeof parsed === 'string') return refuse(res, 422, `${key}: ${parsed}`);

    let status: number;
    let body: unknown;
    try {
      const account = store.account(Number(params.account_id));
      const out = route.handler({ account, params, query: url.searchParams, body: parsed.body, files: parsed.files });
      status = out.status ?? 200;
      body = out.body;
    } catch (err) {
      if (err instanceof NotFound) return send(res, 404, { error: 'Resource could not be found' });
      if (err instanceof RecordInvalid) return send(res, 422, { message: err.message, attributes: err.attributes });
      if (err instanceof HttpAnswer) return send(res, err.status, err.body);
      throw err;
    }

    const lose = loseFault(key, method);
    if (lose) injected.lost++;
    if (lose?.mode === 'reset') {
      req.socket.destroy();
      return;
    }
    if (lose?.mode === 'timeout') return; // applied, never answered: the client times out
    if (lose) return send(res, lose.status ?? 500, { error: 'injected failure after applying the request' });
    send(res, status, body);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      violations.push(`double crashed on ${req.method} ${req.url}: ${String(err)}`);
      send(res, 500, { error: String(err) });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const accountOf = (id: number): AccountRecord => store.account(id);

  return {
    url: baseUrl,
    token,
    addAccount: () => ({ id: store.addAccount().id }),
    addInbox: (o) => {
      const i = store.addInbox(o);
      return { id: i.id, secret: i.secret };
    },
    addAccountWebhook: (o) => store.addWebhook(o.accountId, o),
    contacts: (accountId) => [...accountOf(accountId).contacts.values()],
    contactInboxes: (accountId) => [...accountOf(accountId).contactInboxes],
    conversations: (accountId) => [...accountOf(accountId).conversations.values()],
    messages: (accountId, conversationId) => store.conversationMessages(accountOf(accountId), conversationId),
    deleteConversation: (accountId, conversationId) => store.deleteConversation(accountOf(accountId), conversationId),
    setConversationStatus: (accountId, conversationId, status) => {
      store.conversation(accountOf(accountId), conversationId).status = status;
    },
    createAgentMessage: (accountId, conversationId, o) => {
      const account = accountOf(accountId);
      return createMessage(account, store.conversation(account, conversationId), { content: o.content, message_type: 'outgoing', private: o.private ?? false }, []);
    },
    routes: routes.map((r) => `${r.method} ${r.template}`),
    violations,
    calls: {
      count: () => [...counts.values()].reduce((s, n) => s + n, 0),
      reset: () => counts.clear(),
      byRoute: () => Object.fromEntries(counts),
    },
    faults: {
      fail: (o) => {
        const f: FailFault = { ...o, ...(o.forMs !== undefined ? { until: Date.now() + o.forMs } : {}) };
        failFaults.push(f);
        return () => {
          failFaults = failFaults.filter((x) => x !== f);
        };
      },
      loseResponses: (o) => {
        loseFaults.push(o);
        return () => {
          loseFaults = loseFaults.filter((x) => x !== o);
        };
      },
      slow: (ms) => {
        latencies.push(ms);
        let removed = false;
        return () => {
          if (removed) return;
          removed = true;
          const i = latencies.indexOf(ms);
          if (i >= 0) latencies = latencies.filter((_, j) => j !== i);
        };
      },
      injected: () => ({ ...injected }),
      clear: () => {
        failFaults = [];
        loseFaults = [];
        latencies = [];
      },
    },
    webhookDeliveries: () => [...deliveries],
    close: async () => {
      await Promise.allSettled([...pendingWebhooks]);
      for (const t of delays) clearTimeout(t);
      delays.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function matchClauses(c: CwContactRecord, clauses: Array<{ attribute_key: string; filter_operator: string; values: unknown[]; query_operator?: string | null }>): boolean {
  let result: boolean | undefined;
  let pending: string | null | undefined;
  for (const clause of clauses) {
    const value = (c as unknown as Record<string, unknown>)[clause.attribute_key];
    const v = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
    const values = clause.values.map(String);
    let hit: boolean;
    switch (clause.filter_operator) {
      case 'equal_to':
        hit = values.includes(v);
        break;
      case 'not_equal_to':
        hit = !values.includes(v);
        break;
      case 'contains':
        hit = values.some((x) => v.toLowerCase().includes(x.toLowerCase()));
        break;
      case 'does_not_contain':
        hit = !values.some((x) => v.toLowerCase().includes(x.toLowerCase()));
        break;
      case 'starts_with':
        hit = values.some((x) => v.startsWith(x));
        break;
      default:
        hit = false;
    }
    result = result === undefined ? hit : pending === 'OR' ? result || hit : result && hit;
    pending = clause.query_operator;
  }
  return result ?? true;
}
