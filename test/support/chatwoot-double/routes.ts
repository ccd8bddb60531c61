/**
 * The Application API routes the double serves, each `METHOD /spec
 * template` an operation of Chatwoot's spec (checked at start and by the
 * contract test), with the controllers' behaviour from
 * `reference/chatwoot.md` §2.
 */
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
  type Store,
} from './store.js';
import { PROFILE_ROUTE, type TokenOwner, type Tokens } from './tokens.js';
import type { Webhooks } from './webhooks.js';

export interface UploadedFile {
  name: string;
  type: string;
  data: Buffer;
}

export interface RequestCtx {
  account: AccountRecord;
  params: Record<string, string>;
  query: URLSearchParams;
  body: Record<string, unknown>;
  files: UploadedFile[];
}

export type Handler = (ctx: RequestCtx) => { status?: number; body: unknown };

/** A route outside any account (`/api/v1/profile`): it answers for the token's owner. */
export type UserHandler = (ctx: { owner: TokenOwner; token: string }) => { status?: number; body: unknown };

export type RouteDef = { method: string; template: string; handler: Handler } | { method: string; template: string; userHandler: UserHandler };

export interface RouteDeps {
  store: Store;
  tokens: Tokens;
  webhooks: Webhooks;
  /** `CONVERSATION_MESSAGE_PER_MINUTE_LIMIT`. */
  messagesPerMinute: number;
  /** The double's base URL (attachment `data_url`s). */
  baseUrl(): string;
  /** Records a contract violation line. */
  violation: (line: string) => void;
  onMessage?: (message: CwMessageRecord) => void;
}

export const ACCOUNT = '/api/v1/accounts/{account_id}';
const CONTACTS_PER_PAGE = 15;
const CONVERSATIONS_PER_PAGE = 25;
const MAX_CONTENT = 150_000;
const MAX_ATTACHMENTS = 15;

interface FilterClause {
  attribute_key: string;
  filter_operator: string;
  values: unknown[];
  query_operator?: string | null;
}

/** English `conversations.activity.status.*` texts for a status set by the token's user. */
const STATUS_ACTIVITY: Record<ConversationStatus, (user: string) => string> = {
  open: (u) => `Conversation was reopened by ${u}`,
  resolved: (u) => `Conversation was marked resolved by ${u}`,
  pending: (u) => `Conversation was marked as pending by ${u}`,
  snoozed: (u) => `Conversation was snoozed by ${u}`,
};
const AUTO_REOPEN_ACTIVITY = 'System reopened the conversation due to a new incoming message.';

const num = (v: string | undefined): number => Number(v);
const page = (q: URLSearchParams): number => Math.max(1, Math.floor(Number(q.get('page') ?? 1)) || 1);
const obj = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

/** The events and the activity message of a status change (`Conversation#execute_after_update_commit_callbacks`). */
export function statusChanged(deps: RouteDeps, account: AccountRecord, conv: CwConversationRecord, previous: ConversationStatus, activity: string): void {
  deps.store.addMessage(account, conv, { content: activity, message_type: 'activity', content_type: 'text', private: false, source_id: null, content_attributes: {}, attachments: [], sender: null });
  // Under Rails 7.1 `changed_attributes` of conversation_status_changed is null (reference §3.2).
  deps.webhooks.conversation(account, conv.id, 'conversation_status_changed', { changed_attributes: null });
  deps.webhooks.conversation(account, conv.id, 'conversation_updated', { changed_attributes: [{ status: { previous_value: previous, current_value: conv.status } }] });
}

/** `Messages::MessageBuilder#perform` plus the model's validations and callbacks; fires `message_created`. */
/** `userId`: the agent who writes it (the token's user when the API is called). */
export function createMessage(deps: RouteDeps, account: AccountRecord, conv: CwConversationRecord, body: Record<string, unknown>, files: UploadedFile[], userId?: number): CwMessageRecord {
  const { store } = deps;
  const type = (typeof body.message_type === 'string' ? body.message_type : 'outgoing') as MessageType;
  if (type !== 'incoming' && type !== 'outgoing' && type !== 'template') throw new HttpAnswer(422, { error: `'${type}' is not a valid message_type` });
  if (store.messagesSince(account, conv.id, Math.floor(Date.now() / 1000) - 60) >= deps.messagesPerMinute) throw new HttpAnswer(422, { error: 'Validation failed: Too many messages' });
  const content = typeof body.content === 'string' ? body.content : null;
  if (content !== null && content.length > MAX_CONTENT) throw new HttpAnswer(422, { error: `Validation failed: Content is too long (maximum is ${MAX_CONTENT} characters)` });
  if (files.length > MAX_ATTACHMENTS) throw new HttpAnswer(422, { error: `Validation failed: Attachments Too many attachments, maximum allowed is ${MAX_ATTACHMENTS}` });
  const attrs: Record<string, unknown> = { ...(obj(body.content_attributes) ?? {}) };
  if (body.external_created_at !== undefined && body.external_created_at !== null && body.external_created_at !== '') attrs.external_created_at = body.external_created_at;
  const { message, reopenedFrom } = store.addMessage(account, conv, {
    content,
    message_type: type,
    content_type: typeof body.content_type === 'string' ? body.content_type : 'text',
    private: body.private === true || body.private === 'true' || body.private === '1',
    source_id: typeof body.source_id === 'string' ? body.source_id : null,
    content_attributes: attrs,
    attachments: files.map((f) => store.newAttachment(f.type, f.name, f.data, deps.baseUrl())),
    sender: type === 'incoming' ? { type: 'contact', id: conv.contact_id } : { type: 'user', id: userId ?? store.user.id },
    ...(typeof body.echo_id === 'string' ? { echo_id: body.echo_id } : {}),
  });
  // after_create_commit: reopen_conversation (its events) comes before dispatch_create_events.
  if (reopenedFrom !== undefined) statusChanged(deps, account, conv, reopenedFrom, AUTO_REOPEN_ACTIVITY);
  deps.webhooks.message(account, message, 'message_created');
  deps.onMessage?.(message);
  return message;
}

/** A status set by the token's user (toggle_status, or an agent in the dashboard). */
export function setConversationStatus(deps: RouteDeps, account: AccountRecord, conv: CwConversationRecord, status: ConversationStatus, snoozedUntilS: number | null = null): boolean {
  const previous = deps.store.setStatus(conv, status, snoozedUntilS);
  if (previous === undefined) return false;
  statusChanged(deps, account, conv, previous, STATUS_ACTIVITY[status](deps.store.user.name));
  return true;
}

/**
 * A request Chatwoot refuses for what it says rather than for the state it
 * finds: recorded as a contract violation, answered 422 `{"error": reason}`.
 */
export class Refusal extends Error {}

/** `lib/filters/filter_keys.yml`, `contacts:` (all `text_case_insensitive`). */
const CONTACT_FILTER_KEYS: Record<string, { additional: boolean; operators: string[] }> = {
  name: { additional: false, operators: ['equal_to', 'not_equal_to', 'contains', 'does_not_contain'] },
  phone_number: { additional: false, operators: ['equal_to', 'not_equal_to', 'contains', 'does_not_contain', 'starts_with'] },
  email: { additional: false, operators: ['equal_to', 'not_equal_to', 'contains', 'does_not_contain'] },
  identifier: { additional: false, operators: ['equal_to', 'not_equal_to'] },
  country_code: { additional: true, operators: ['equal_to', 'not_equal_to'] },
  city: { additional: true, operators: ['equal_to', 'not_equal_to', 'contains', 'does_not_contain'] },
  company: { additional: true, operators: ['equal_to', 'not_equal_to', 'contains', 'does_not_contain'] },
};

/**
 * `Contacts::FilterService`: each clause is `LOWER(column) <op> :value` and
 * the clauses are joined into one SQL string with their `query_operator`s,
 * so AND binds tighter than OR. `equal_to`/`not_equal_to` compare with the
 * FIRST value only (`values[0]`; a phone value is normalised to one leading
 * `+`); `contains`/`does_not_contain` take every value (`ILIKE ANY`). A
 * NULL column matches nothing. Only contacts with an email, phone number
 * or identifier are searched (`resolved_contacts`).
 */
function filterContacts(contacts: Iterable<CwContactRecord>, clauses: FilterClause[], note: (line: string) => void): CwContactRecord[] {
  if (clauses.length === 0) throw new Refusal('contacts/filter: payload has no clause');
  clauses.forEach((clause, i) => {
    const key = CONTACT_FILTER_KEYS[clause.attribute_key];
    if (!key) throw new Refusal(`contacts/filter: attribute ${clause.attribute_key} is not a contact filter attribute the double knows (${Object.keys(CONTACT_FILTER_KEYS).join(', ')})`);
    if (!key.operators.includes(clause.filter_operator)) {
      throw new Refusal(`Invalid operator. The allowed operators for ${clause.attribute_key} are [${key.operators.join(',')}].`);
    }
    if (!Array.isArray(clause.values) || clause.values.length === 0) throw new Refusal(`Invalid value. The values provided for ${clause.attribute_key} are invalid`);
    if (i < clauses.length - 1 && !clause.query_operator) throw new Refusal(`contacts/filter: clause ${i} has no query_operator but another clause follows (the SQL would not parse)`);
    if ((clause.filter_operator === 'equal_to' || clause.filter_operator === 'not_equal_to' || clause.filter_operator === 'starts_with') && clause.values.length > 1) {
      note(`contacts/filter: ${clause.attribute_key} ${clause.filter_operator} with ${clause.values.length} values: Chatwoot compares with values[0] only and silently ignores ${JSON.stringify(clause.values.slice(1))}`);
    }
  });
  const test = (c: CwContactRecord, clause: FilterClause): boolean => {
    const key = CONTACT_FILTER_KEYS[clause.attribute_key]!;
    const raw = key.additional ? c.additional_attributes[clause.attribute_key] : (c as unknown as Record<string, unknown>)[clause.attribute_key];
    if (raw === null || raw === undefined) return false;
    const col = (typeof raw === 'string' ? raw : JSON.stringify(raw)).toLowerCase();
    const first = String(clause.values[0]);
    const target = clause.attribute_key === 'phone_number' ? `+${first.replace(/\+/g, '')}` : first.toLowerCase();
    const patterns = clause.values.map((v) => String(v).trim().toLowerCase());
    switch (clause.filter_operator) {
      case 'equal_to':
        return col === target;
      case 'not_equal_to':
        return col !== target;
      case 'contains':
        return patterns.some((p) => col.includes(p));
      case 'does_not_contain':
        return !patterns.some((p) => col.includes(p));
      case 'starts_with':
        return col.startsWith(target.toLowerCase());
      default:
        return false;
    }
  };
  const resolved = (c: CwContactRecord): boolean => Boolean(c.email || c.phone_number || c.identifier);
  return [...contacts].filter((c) => {
    if (!resolved(c)) return false;
    // OR of AND-groups: SQL precedence over the joined string.
    let any = false;
    let group = true;
    clauses.forEach((clause, i) => {
      group = group && test(c, clause);
      const op = i < clauses.length - 1 ? String(clause.query_operator).toUpperCase() : 'END';
      if (op !== 'AND') {
        any = any || group;
        group = true;
      }
    });
    return any;
  });
}

/**
 * `InboxPolicy#create?`, `#update?` (and `inbox_members#create`, which
 * authorizes `create?` on the inbox): administrators only. Pundit's
 * `NotAuthorizedError` is rendered by `RequestExceptionHandler` as a 401.
 */
function requireAdministrator(account: AccountRecord): void {
  if (account.tokenRole !== 'administrator') throw new HttpAnswer(401, { error: 'You are not authorized to do this action' });
}

/** `allowed_channel_types` of `InboxesController`; the double keeps only API inboxes. */
const CHANNEL_TYPES = ['web_widget', 'api', 'email', 'line', 'telegram', 'whatsapp', 'sms'];

export function buildRoutes(deps: RouteDeps): RouteDef[] {
  const { store, webhooks } = deps;
  const A = ACCOUNT;
  const route = (method: string, template: string, handler: Handler): RouteDef => ({ method, template, handler });

  return [
    // ── profile ──────────────────────────────────────────────────────────────
    { method: 'GET', template: PROFILE_ROUTE.slice('GET '.length), userHandler: ({ owner, token }) => ({ body: deps.tokens.profileJson(owner, token) }) },

    // ── inboxes ──────────────────────────────────────────────────────────────
    route('GET', `${A}/inboxes`, ({ account }) => ({
      body: { payload: [...store.inboxes.values()].filter((i) => i.account_id === account.id).map((i) => store.inboxJson(i)) },
    })),
    route('GET', `${A}/inboxes/{id}`, ({ account, params }) => ({ body: store.inboxJson(store.inbox(account, num(params.id))) })),
    route('POST', `${A}/inboxes`, ({ account, body }) => {
      requireAdministrator(account);
      const channel = obj(body.channel);
      // `permitted_params[:channel][:type]` on a missing channel is a NoMethodError (a 500) in Chatwoot.
      if (!channel) throw new Refusal('inboxes: channel is required (Chatwoot answers 500 without it)');
      const type = String(channel.type);
      // An unknown type creates no channel, and the inbox then fails "Channel must exist".
      if (!CHANNEL_TYPES.includes(type)) throw new Refusal(`inboxes: channel type ${JSON.stringify(channel.type)} is not one Chatwoot creates (${CHANNEL_TYPES.join(', ')})`);
      if (type !== 'api') throw new Refusal(`inboxes: the double keeps API inboxes only, not ${type}`);
      const inbox = store.createApiInbox(account, { name: body.name, webhookUrl: channel.webhook_url, lockToSingleConversation: body.lock_to_single_conversation });
      return { body: store.inboxJson(inbox) };
    }),
    route('PATCH', `${A}/inboxes/{id}`, ({ account, params, body }) => {
      // fetch_inbox (404) comes before check_authorization.
      const inbox = store.inbox(account, num(params.id));
      requireAdministrator(account);
      store.updateInbox(inbox, body);
      return { body: store.inboxJson(inbox) };
    }),
    route('POST', `${A}/inbox_members`, ({ account, body }) => {
      const inbox = store.inbox(account, Number(body.inbox_id));
      requireAdministrator(account);
      store.addInboxMembers(inbox, (body.user_ids as unknown[]).map(Number));
      return { body: { payload: inbox.members.map((id) => store.agentJson(account, id)) } };
    }),

    // ── contacts ─────────────────────────────────────────────────────────────
    route('GET', `${A}/contacts/search`, ({ account, query }) => {
      // name ILIKE %q% OR email ILIKE %q% OR phone_number ILIKE %q% OR identifier LIKE %q%
      const q = query.get('q') ?? '';
      const ql = q.toLowerCase();
      const hits = [...account.contacts.values()].filter(
        (c) => (c.name ?? '').toLowerCase().includes(ql) || (c.email ?? '').toLowerCase().includes(ql) || (c.phone_number ?? '').toLowerCase().includes(ql) || (c.identifier ?? '').includes(q),
      );
      const p = page(query);
      const withInboxes = query.get('include_contact_inboxes') !== 'false';
      return {
        body: {
          meta: { count: hits.length, current_page: String(p), has_more: hits.length > p * CONTACTS_PER_PAGE },
          payload: hits.slice((p - 1) * CONTACTS_PER_PAGE, p * CONTACTS_PER_PAGE).map((c) => store.contactJson(account, c, withInboxes)),
        },
      };
    }),
    route('POST', `${A}/contacts/filter`, ({ account, query, body }) => {
      const hits = filterContacts(account.contacts.values(), body.payload as FilterClause[], deps.violation);
      const p = page(query);
      return {
        body: { meta: { count: hits.length, current_page: p }, payload: hits.slice((p - 1) * CONTACTS_PER_PAGE, p * CONTACTS_PER_PAGE).map((c) => store.contactJson(account, c)) },
      };
    }),
    route('GET', `${A}/contacts/{id}`, ({ account, params }) => ({ body: { payload: store.contactJson(account, store.contact(account, num(params.id))) } })),
    route('POST', `${A}/contacts`, ({ account, body }) => {
      const { contact, contactInbox } = store.createContact(account, body);
      const inbox = contactInbox ? store.inboxes.get(contactInbox.inbox_id) : undefined;
      webhooks.account(account, 'contact_created', store.contactWebhookJson(account, contact));
      return {
        body: {
          payload: {
            contact: store.contactJson(account, contact),
            contact_inbox: contactInbox ? { inbox: inbox ? store.inboxJson(inbox) : null, source_id: contactInbox.source_id } : null,
          },
        },
      };
    }),
    route('PUT', `${A}/contacts/{id}`, ({ account, params, body }) => {
      const contact = store.contact(account, num(params.id));
      const before = store.contactWebhookJson(account, contact);
      const changed = store.updateContact(account, contact, body);
      if (changed.length > 0) {
        const after = store.contactWebhookJson(account, contact);
        const changes = changed.filter((k) => k in after).map((k) => ({ [k]: { previous_value: before[k], current_value: after[k] } }));
        webhooks.account(account, 'contact_updated', { ...after, changed_attributes: changes });
      }
      return { body: { payload: store.contactJson(account, contact) } };
    }),
    route('GET', `${A}/contacts/{id}/labels`, ({ account, params }) => ({ body: { payload: store.contact(account, num(params.id)).labels ?? [] } })),
    // Chatwoot replaces the contact's whole list with the one posted.
    route('POST', `${A}/contacts/{id}/labels`, ({ account, params, body }) => {
      const contact = store.contact(account, num(params.id));
      contact.labels = [...new Set((body.labels as unknown[]).map(String))];
      return { body: { payload: contact.labels } };
    }),
    route('POST', `${A}/actions/contact_merge`, ({ account, body }) => ({
      body: store.contactJson(account, store.merge(account, Number(body.base_contact_id), Number(body.mergee_contact_id))),
    })),
    route('POST', `${A}/contacts/{id}/contact_inboxes`, ({ account, params, body }) => {
      const contact = store.contact(account, num(params.id));
      const inbox = store.inbox(account, Number(body.inbox_id));
      const sourceId = typeof body.source_id === 'string' && body.source_id !== '' ? body.source_id : undefined;
      // Not rescued in this controller: another contact's source id is a 500 (reference §2.4, §5).
      const ci = store.contactInboxFor(account, contact.id, inbox.id, sourceId, 'raise500');
      return { body: { source_id: ci.source_id, inbox: store.contactInboxInboxJson(inbox.id, inbox.name) } };
    }),
    route('POST', `${A}/contact_inboxes/filter`, ({ account, body }) => {
      const inbox = store.inbox(account, Number(body.inbox_id));
      const ci = account.contactInboxes.find((x) => x.inbox_id === inbox.id && x.source_id === body.source_id);
      const contact = ci ? account.contacts.get(ci.contact_id) : undefined;
      if (!contact) return { status: 404, body: '' };
      return { body: store.contactJson(account, contact) };
    }),
    route('GET', `${A}/contacts/{id}/conversations`, ({ account, params }) => {
      const contact = store.contact(account, num(params.id));
      const convs = [...account.conversations.values()]
        .filter((c) => c.contact_id === contact.id)
        .sort((x, y) => y.last_activity_at - x.last_activity_at || y.id - x.id)
        .slice(0, 20);
      return { body: { payload: convs.map((c) => store.conversationJson(account, c)) } };
    }),

    // ── conversations ────────────────────────────────────────────────────────
    route('GET', `${A}/conversations`, ({ account, query }) => {
      const status = query.get('status') ?? 'open';
      const inboxId = query.get('inbox_id');
      const sourceId = query.get('source_id');
      const all = [...account.conversations.values()].filter((c) => {
        if (status !== 'all' && c.status !== status) return false;
        if (inboxId && c.inbox_id !== Number(inboxId)) return false;
        if (sourceId && account.contactInboxes.find((ci) => ci.id === c.contact_inbox_id)?.source_id !== sourceId) return false;
        return true;
      });
      all.sort((x, y) => y.last_activity_at - x.last_activity_at || y.id - x.id);
      const p = page(query);
      return {
        body: {
          data: {
            meta: { mine_count: 0, assigned_count: 0, unassigned_count: all.length, all_count: all.length },
            payload: all.slice((p - 1) * CONVERSATIONS_PER_PAGE, p * CONVERSATIONS_PER_PAGE).map((c) => store.conversationJson(account, c)),
          },
        },
      };
    }),
    route('POST', `${A}/conversations`, ({ account, body }) => {
      let ci: ContactInboxRecord;
      const sourceId = typeof body.source_id === 'string' && body.source_id !== '' ? body.source_id : undefined;
      const hasInbox = body.inbox_id !== undefined && body.inbox_id !== null && body.inbox_id !== '';
      const hasContact = body.contact_id !== undefined && body.contact_id !== null && body.contact_id !== '';
      // The controller looks the inbox and the contact up first (404s).
      const inbox0 = hasInbox ? store.inbox(account, Number(body.inbox_id)) : undefined;
      const contact0 = hasContact ? store.contact(account, Number(body.contact_id)) : undefined;
      if (inbox0 && contact0) {
        // ContactInboxBuilder: a missing source_id makes a new contact inbox every time (the orphan bug).
        ci = store.contactInboxFor(account, contact0.id, inbox0.id, sourceId, 'raise422');
      } else {
        // The fallback: ContactInbox.find_by!(source_id).
        const found = sourceId !== undefined ? account.contactInboxes.find((x) => x.source_id === sourceId) : undefined;
        if (!found) throw new NotFound();
        ci = found;
      }
      const inbox = store.inbox(account, ci.inbox_id);
      const { conversation, created } = store.createConversation(account, inbox, ci, {
        ...(typeof body.status === 'string' ? { status: body.status as ConversationStatus } : {}),
        ...(obj(body.additional_attributes) ? { additional_attributes: obj(body.additional_attributes)! } : {}),
        ...(obj(body.custom_attributes) ? { custom_attributes: obj(body.custom_attributes)! } : {}),
      });
      if (created) webhooks.conversation(account, conversation.id, 'conversation_created');
      const first = obj(body.message);
      if (first) createMessage(deps, account, conversation, first, []);
      return { body: store.conversationJson(account, conversation) };
    }),
    route('GET', `${A}/conversations/{conversation_id}`, ({ account, params }) => ({
      body: store.conversationJson(account, store.conversation(account, num(params.conversation_id))),
    })),
    route('POST', `${A}/conversations/{conversation_id}/toggle_status`, ({ account, params, body }) => {
      const conv = store.conversation(account, num(params.conversation_id));
      // With no status (the spec requires one): open ⇄ resolved, pending/snoozed → open.
      const next = typeof body.status === 'string' ? (body.status as ConversationStatus) : conv.status === 'open' ? 'resolved' : 'open';
      const snoozedUntil = typeof body.snoozed_until === 'number' ? body.snoozed_until : null;
      setConversationStatus(deps, account, conv, next, snoozedUntil);
      return { body: { meta: {}, payload: { success: true, conversation_id: conv.id, current_status: conv.status, snoozed_until: conv.snoozed_until } } };
    }),

    // ── messages ─────────────────────────────────────────────────────────────
    route('POST', `${A}/conversations/{conversation_id}/messages`, ({ account, params, body, files }) => {
      const conv = store.conversation(account, num(params.conversation_id));
      return { body: store.messageJson(account, createMessage(deps, account, conv, body, files)) };
    }),
    route('GET', `${A}/conversations/{conversation_id}/messages`, ({ account, params, query }) => {
      // MessageFinder: latest 20; after → up to 100 with id > after; before → the 20 before;
      // both → up to 1000 with after <= id < before. Always ascending.
      const conv = store.conversation(account, num(params.conversation_id));
      const all = store.conversationMessages(account, conv.id);
      const before = query.get('before') ? Math.trunc(Number(query.get('before'))) : undefined;
      const after = query.get('after') ? Math.trunc(Number(query.get('after'))) : undefined;
      let out: CwMessageRecord[];
      if (before !== undefined && after !== undefined) out = all.filter((m) => m.id >= after && m.id < before).slice(0, 1000);
      else if (after !== undefined) out = all.filter((m) => m.id > after).slice(0, 100);
      else if (before !== undefined) out = all.filter((m) => m.id < before).slice(-20);
      else out = all.slice(-20);
      const contact = account.contacts.get(conv.contact_id);
      return {
        body: {
          meta: {
            labels: [],
            additional_attributes: conv.additional_attributes,
            contact: contact ? store.contactJson(account, contact, false) : null,
            agent_last_seen_at: 0,
            assignee_last_seen_at: 0,
          },
          payload: out.map((m) => store.messageJson(account, m)),
        },
      };
    }),
    route('PATCH', `${A}/conversations/{conversation_id}/messages/{message_id}`, ({ account, params, body }) => {
      const conv = store.conversation(account, num(params.conversation_id));
      const m = store.message(account, conv.id, num(params.message_id));
      if (store.updateStatus(m, body.status, body.external_error)) webhooks.message(account, m, 'message_updated');
      return { body: store.messageJson(account, m) };
    }),
    route('POST', `${A}/conversations/{conversation_id}/messages/{message_id}/retry`, ({ account, params }) => {
      // MessagesController#retry: StatusUpdateService(message, 'sent'), then content_attributes = {}
      // (external_error and in_reply_to dropped). Two updates, two message_updated; both jobs
      // build their payload after the request, so both show the final state.
      const conv = store.conversation(account, num(params.conversation_id));
      const m = store.message(account, conv.id, num(params.message_id));
      let updates = store.updateStatus(m, 'sent', undefined) ? 1 : 0;
      if (Object.keys(m.content_attributes).length > 0) {
        m.content_attributes = {};
        m.updated_at = Date.now();
        updates++;
      }
      for (let i = 0; i < updates; i++) webhooks.message(account, m, 'message_updated');
      return { body: store.messageJson(account, m) };
    }),
    route('DELETE', `${A}/conversations/{conversation_id}/messages/{message_id}`, ({ account, params }) => {
      const conv = store.conversation(account, num(params.conversation_id));
      const m = store.message(account, conv.id, num(params.message_id));
      store.softDelete(m);
      webhooks.message(account, m, 'message_updated');
      return { body: store.messageJson(account, m) };
    }),
  ];
}
