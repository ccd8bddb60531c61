/**
 * A contract-checked double of Chatwoot's Application API for tests and
 * benchmarks: a real HTTP server (node:http) on a free port, Chatwoot's
 * rules in memory (`store.ts`), its routes (`routes.ts`), every request
 * checked against Chatwoot's own OpenAPI files (`contract.ts`), faults on
 * demand (`faults.ts`), call counting, and signed webhooks (`webhooks.ts`).
 *
 * What Chatwoot would refuse because of the request itself (unknown route,
 * bad parameters, a body against the spec) is answered as Chatwoot would
 * and recorded in `violations`; what it refuses because of the state it
 * finds (a deleted conversation, a phone number already taken) is answered
 * without a violation, as that is normal Chatwoot behaviour.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkForm, checkParams, Contract, describeErrors, type Operation } from './contract.js';
import { Faults, type FailOptions, type LoseOptions, type FaultCounts } from './faults.js';
import { buildRoutes, createMessage, Refusal, setConversationStatus, type RouteDef, type RouteDeps, type UploadedFile } from './routes.js';
import {
  type AccountRole,
  type ContactInboxRecord,
  type ConversationStatus,
  type CwContactRecord,
  type CwConversationRecord,
  type CwMessageRecord,
  HttpAnswer,
  type InboxRecord,
  NotFound,
  RecordInvalid,
  Store,
} from './store.js';
import { Tokens } from './tokens.js';
import { Webhooks, type WebhookDelivery } from './webhooks.js';

export type { AccountRole, AttachmentRecord, ContactInboxRecord, CwContactRecord, CwConversationRecord, CwMessageRecord, InboxRecord } from './store.js';
export type { FailOptions, FaultCounts, LoseOptions } from './faults.js';
export type { WebhookDelivery } from './webhooks.js';

export interface ChatwootDoubleOptions {
  /** Seed of the fault dice (default 1: the same run fails the same calls). */
  seed?: number;
  /** Post webhooks to inbox `webhook_url`s and account webhooks (default true). */
  webhooksEnabled?: boolean;
  /** Chatwoot's `CONVERSATION_MESSAGE_PER_MINUTE_LIMIT` (default 200). */
  messagesPerMinutePerConversation?: number;
  /** Called with every message created through the API (benchmarks time deliveries with it). */
  onMessage?: (message: CwMessageRecord) => void;
}

/** A file attached by an agent in the dashboard. */
export interface AgentAttachment {
  fileName: string;
  contentType: string;
  data: Buffer | Uint8Array;
}

export interface ChatwootDouble {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** The valid `api_access_token` (user 1's, an administrator of every account); an unknown token gets 401 `{"error":"Invalid Access Token"}`. */
  token: string;
  /**
   * Another user's access token, with a role per account (accounts not listed: not a member).
   * Only `GET /api/v1/profile` serves it; another route records a violation.
   */
  addUserToken(o: { name: string; email: string; roles: Record<number, AccountRole> }): string;
  /** An agent bot's access token: refused with Chatwoot's bot 401 on every route the double serves except the bots' own (which record a violation). */
  addAgentBotToken(o?: { name?: string }): string;
  /** As if the token were revoked or a proxy dropped its header: every call gets 401 Invalid Access Token until the returned function runs. */
  refuseTokens(): () => void;
  addAccount(): { id: number };
  addInbox(o: { accountId: number; name?: string; webhookUrl?: string; secret?: string; lockToSingleConversation?: boolean }): { id: number; secret: string };
  addAccountWebhook(o: { accountId: number; url: string; subscriptions: string[]; secret?: string }): { id: number };
  /** As if an administrator changed the inbox's webhook URL in its settings. */
  setInboxWebhook(inboxId: number, url: string): void;
  /** The account's inboxes, those created through the API included (live records: `webhook_url`, `secret`, `members`). */
  inboxes(accountId: number): InboxRecord[];
  /** The token owner's role in the account (administrator unless set): inbox create and update, and inbox members, need an administrator. */
  setTokenRole(accountId: number, role: AccountRole): void;
  /** Live contacts (merged-away ones are gone). */
  contacts(accountId: number): CwContactRecord[];
  contactInboxes(accountId: number): ContactInboxRecord[];
  /** Conversations not deleted. */
  conversations(accountId: number): CwConversationRecord[];
  /** Ascending by id; `message_type` as a string. */
  messages(accountId: number, conversationId: number): CwMessageRecord[];
  /** As if an admin deleted it: later calls on it get 404. */
  deleteConversation(accountId: number, conversationId: number): void;
  /** As if an agent changed the status in the dashboard (activity message, status webhooks). */
  setConversationStatus(accountId: number, conversationId: number, status: ConversationStatus): void;
  /** Another agent of the installation (the token's owner is user 1, `api@ponte.invalid`). */
  addUser(o: { name: string; email: string }): { id: number };
  /** An agent's reply written in the dashboard (fires `message_created`); by the token's owner unless `userId` says who. */
  createAgentMessage(accountId: number, conversationId: number, o: { content: string; private?: boolean; attachments?: AgentAttachment[]; userId?: number }): CwMessageRecord;
  /** Every route served, as `METHOD /spec/template`. */
  readonly routes: string[];
  /** Requests Chatwoot would refuse (unknown route, bad parameters, body against the spec), one readable line each. */
  readonly violations: string[];
  calls: { count(): number; reset(): void; byRoute(): Record<string, number> };
  faults: {
    fail(o: FailOptions): () => void;
    loseResponses(o: LoseOptions): () => void;
    slow(ms: number): () => void;
    clear(): void;
    /** How many answers each fault mode has produced so far. */
    injected(): FaultCounts;
  };
  webhookDeliveries(): WebhookDelivery[];
  close(): Promise<void>;
}

type Params = Record<string, string>;

interface Route {
  method: string;
  template: string;
  key: string;
  regex: RegExp;
  names: string[];
  def: RouteDef;
  op: Operation;
}

/** ActiveStorage's blob redirect, where attachment `data_url`s point (signed: no token). */
const BLOB_ROUTE = 'GET /rails/active_storage/blobs/redirect/{signed_id}/{filename}';
const BLOB_PATH = /^\/rails\/active_storage\/blobs\/redirect\/(\d+)\/[^/]+$/;

let sharedContract: Contract | undefined;

export async function startChatwootDouble(options: ChatwootDoubleOptions = {}): Promise<ChatwootDouble> {
  const contract = (sharedContract ??= new Contract());
  const store = new Store();
  const tokens = new Tokens(store);
  const faults = new Faults(options.seed ?? 1);
  const webhooks = new Webhooks(store, options.webhooksEnabled ?? true);
  const violations: string[] = [];
  const counts = new Map<string, number>();
  /** Pending `slow` delays, cleared on close so no timer outlives the double. */
  const delays = new Set<NodeJS.Timeout>();
  let baseUrl = '';

  const deps: RouteDeps = {
    store,
    tokens,
    webhooks,
    messagesPerMinute: options.messagesPerMinutePerConversation ?? 200,
    ...(options.onMessage ? { onMessage: options.onMessage } : {}),
    baseUrl: () => baseUrl,
    violation: (line) => violations.push(line),
  };

  const routes: Route[] = buildRoutes(deps).map((def) => {
    const { method, template } = def;
    const op = contract.operation(method, template);
    if (!op) throw new Error(`the double serves ${method} ${template}, which Chatwoot's spec does not define`);
    const names: string[] = [];
    const regex = new RegExp(`^${template.replace(/\{(\w+)\}/g, (_, n: string) => (names.push(n), '([^/]+)'))}$`);
    return { method, template, key: `${method} ${template}`, regex, names, def, op };
  });

  /** The most specific route: literal segments beat parameters (`contacts/search` over `contacts/{id}`). */
  function match(method: string, path: string): { route: Route; params: Params } | undefined {
    let best: { route: Route; params: Params } | undefined;
    for (const route of routes) {
      if (route.method !== method) continue;
      const m = route.regex.exec(path);
      if (!m) continue;
      if (best && best.route.names.length <= route.names.length) continue;
      const params: Params = {};
      route.names.forEach((n, i) => (params[n] = safeDecode(m[i + 1]!)));
      best = { route, params };
    }
    return best;
  }

  // ── HTTP ───────────────────────────────────────────────────────────────────

  function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.destroyed || res.headersSent) return;
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      res.writeHead(status, { 'content-type': 'text/plain', ...headers });
      res.end(body);
    } else {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    }
  }

  function refuse(res: http.ServerResponse, status: number, line: string, error: string = line): void {
    violations.push(line);
    send(res, status, { error });
  }

  async function readBody(req: http.IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /** The request body as the controller sees it, or the reason it breaks the contract. */
  async function parseBody(req: http.IncomingMessage, raw: Buffer, op: Operation): Promise<{ body: Record<string, unknown>; files: UploadedFile[] } | string> {
    const ct = String(req.headers['content-type'] ?? '').toLowerCase();
    if (raw.length === 0) return op.body?.required ? 'request body is required' : { body: {}, files: [] };
    if (ct.startsWith('multipart/form-data')) {
      const fields = op.body?.multipart;
      if (!fields) return 'multipart/form-data is not accepted here';
      let form: FormData;
      try {
        form = await new Response(new Uint8Array(raw), { headers: { 'content-type': String(req.headers['content-type']) } }).formData();
      } catch (err) {
        return `multipart body does not parse: ${String(err)}`;
      }
      const body: Record<string, unknown> = {};
      const files: UploadedFile[] = [];
      for (const [k, v] of form.entries()) {
        if (typeof v === 'string') {
          const bracket = /^content_attributes\[(\w+)\]$/.exec(k);
          if (bracket) body.content_attributes = { ...(body.content_attributes as Record<string, unknown> | undefined), [bracket[1]!]: v };
          else if (k === 'content_attributes') {
            try {
              const parsed = JSON.parse(v) as unknown;
              if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return 'form field content_attributes is not a JSON object';
              body.content_attributes = parsed;
            } catch {
              return 'form field content_attributes is not JSON';
            }
          } else body[k] = v;
        } else if (k === 'attachments[]') {
          files.push({ name: v.name, type: v.type || 'application/octet-stream', data: Buffer.from(await v.arrayBuffer()) });
        } else {
          return `form file part ${k} is not attachments[]`;
        }
      }
      const problems = checkForm(fields, body);
      return problems.length > 0 ? problems.join('; ') : { body, files };
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

  function count(key: string): void {
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }

  async function delay(): Promise<void> {
    const ms = faults.latency();
    if (ms <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        delays.delete(timer);
        resolve();
      }, ms);
      delays.add(timer);
    });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://double');
    const raw = await readBody(req);

    const blob = method === 'GET' ? BLOB_PATH.exec(url.pathname) : null;
    if (blob) {
      count(BLOB_ROUTE);
      await delay();
      // An outage takes the file storage down too.
      const refusal = faults.refusal(BLOB_ROUTE);
      if (refusal) return send(res, refusal.status, refusal.status === 429 ? 'Retry later\n' : { error: `injected ${refusal.status}` });
      const a = store.attachment(Number(blob[1]));
      if (!a) return send(res, 404, '');
      res.writeHead(200, { 'content-type': a.content_type, 'content-length': String(a.data.length) });
      res.end(a.data);
      return;
    }

    const found = match(method, url.pathname);
    const key = found ? found.route.key : `${method} ${url.pathname}`;
    count(key);
    await delay();

    if (!found) return refuse(res, 404, `${method} ${url.pathname}: no such route in Chatwoot's API`, 'Resource could not be found');
    const token = req.headers.api_access_token;
    const verdict = tokens.verdict(token, key);
    if (!verdict.allow) {
      if (verdict.violation) violations.push(verdict.violation);
      return send(res, verdict.status, { error: verdict.error });
    }

    const { route, params } = found;
    const paramProblems = checkParams(route.op, params, url.searchParams);
    if (paramProblems.length > 0) return refuse(res, 422, `${method} ${url.pathname}: ${paramProblems.join('; ')}`);
    const parsed = await parseBody(req, raw, route.op);
    if (typeof parsed === 'string') return refuse(res, 422, `${method} ${url.pathname}: ${parsed}`);

    const refusal = faults.refusal(key);
    if (refusal) {
      if (refusal.status === 429) return send(res, 429, 'Retry later\n', refusal.retryAfterS !== undefined ? { 'retry-after': String(refusal.retryAfterS) } : {});
      return send(res, refusal.status, { error: `injected ${refusal.status}` });
    }

    let status: number;
    let body: unknown;
    try {
      const def = route.def;
      const out =
        'userHandler' in def
          ? def.userHandler({ owner: verdict.owner, token: String(token) })
          : def.handler({ account: store.account(Number(params.account_id)), params, query: url.searchParams, body: parsed.body, files: parsed.files });
      status = out.status ?? 200;
      body = out.body;
    } catch (err) {
      if (err instanceof NotFound) return send(res, 404, { error: 'Resource could not be found' });
      if (err instanceof RecordInvalid) return send(res, 422, { message: err.message, attributes: err.attributes });
      if (err instanceof HttpAnswer) return send(res, err.status, err.body);
      if (err instanceof Refusal) return refuse(res, 422, `${method} ${url.pathname}: ${err.message}`, err.message);
      throw err;
    }

    const lose = faults.loss(key, method);
    if (lose?.mode === 'reset') {
      req.socket.destroy();
      return;
    }
    if (lose?.mode === 'timeout') return; // applied, never answered: the client gives up, or close() ends it
    if (lose) return send(res, lose.status ?? 500, { status: lose.status ?? 500, error: 'Internal Server Error' });
    send(res, status, body);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      violations.push(`the double failed on ${req.method} ${req.url}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      send(res, 500, { error: String(err) });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const accountOf = (id: number) => store.account(id);

  return {
    url: baseUrl,
    token: tokens.main,
    addUserToken: (o) => tokens.addUser(o).token,
    addAgentBotToken: (o = {}) => tokens.addAgentBot({ name: o.name ?? 'Bot' }).token,
    refuseTokens: () => tokens.refuseAll(),
    addAccount: () => ({ id: store.addAccount().id }),
    addInbox: (o) => {
      const i = store.addInbox(o);
      return { id: i.id, secret: i.secret };
    },
    addAccountWebhook: (o) => store.addWebhook(o.accountId, o),
    setInboxWebhook: (inboxId, url) => {
      const inbox = store.inboxes.get(inboxId);
      if (!inbox) throw new Error(`no inbox ${inboxId}`);
      inbox.webhook_url = url;
    },
    inboxes: (accountId) => [...store.inboxes.values()].filter((i) => i.account_id === accountOf(accountId).id),
    setTokenRole: (accountId, role) => {
      accountOf(accountId).tokenRole = role;
    },
    contacts: (accountId) => [...accountOf(accountId).contacts.values()],
    contactInboxes: (accountId) => [...accountOf(accountId).contactInboxes],
    conversations: (accountId) => [...accountOf(accountId).conversations.values()],
    messages: (accountId, conversationId) => [...store.conversationMessages(accountOf(accountId), conversationId)],
    deleteConversation: (accountId, conversationId) => store.deleteConversation(accountOf(accountId), conversationId),
    setConversationStatus: (accountId, conversationId, status) => {
      const account = accountOf(accountId);
      setConversationStatus(deps, account, store.conversation(account, conversationId), status);
    },
    createAgentMessage: (accountId, conversationId, o) => {
      const account = accountOf(accountId);
      const files: UploadedFile[] = (o.attachments ?? []).map((a) => ({ name: a.fileName, type: a.contentType, data: Buffer.from(a.data) }));
      return createMessage(deps, account, store.conversation(account, conversationId), { content: o.content, message_type: 'outgoing', private: o.private ?? false }, files, o.userId);
    },
    addUser: (o) => store.addUser(o),
    routes: routes.map((r) => r.key),
    violations,
    calls: {
      count: () => {
        let n = 0;
        for (const v of counts.values()) n += v;
        return n;
      },
      reset: () => counts.clear(),
      byRoute: () => Object.fromEntries(counts),
    },
    faults: {
      fail: (o) => faults.fail(o),
      loseResponses: (o) => faults.loseResponses(o),
      slow: (ms) => faults.slow(ms),
      clear: () => faults.clear(),
      injected: () => faults.injected(),
    },
    webhookDeliveries: () => webhooks.deliveries(),
    close: async () => {
      await webhooks.close();
      for (const t of delays) clearTimeout(t);
      delays.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
