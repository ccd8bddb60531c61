/**
 * The double's memory: accounts (and the token owner's role in each), inboxes
 * and their members, contacts, contact inboxes,
 * conversations and messages, with Chatwoot's rules (uniqueness per account,
 * contact-inbox `source_id` per inbox, soft delete, status transitions,
 * reopening, reply resolution, contact merge), and the JSON shapes its API
 * and webhooks answer with (`reference/chatwoot.md` §2, §3.2).
 */
import { randomUUID } from 'node:crypto';

export type MessageType = 'incoming' | 'outgoing' | 'activity' | 'template';
export const MESSAGE_TYPE_NUMBER: Record<MessageType, number> = { incoming: 0, outgoing: 1, activity: 2, template: 3 };
export type MessageStatus = 'sent' | 'delivered' | 'read' | 'failed';
export const MESSAGE_STATUSES: readonly MessageStatus[] = ['sent', 'delivered', 'read', 'failed'];

export interface InboxRecord {
  id: number;
  account_id: number;
  name: string;
  webhook_url: string | null;
  secret: string;
  lock_to_single_conversation: boolean;
  inbox_identifier: string;
  /** Its members' user ids (`inbox_members`), in the order they were added. */
  members: number[];
}

/** An account user's role (`account_users.role`). */
export type AccountRole = 'administrator' | 'agent';

export interface CwContactRecord {
  id: number;
  account_id: number;
  name: string | null;
  phone_number: string | null;
  identifier: string | null;
  email: string | null;
  additional_attributes: Record<string, unknown>;
  custom_attributes: Record<string, unknown>;
  created_at: number;
  last_activity_at: number | null;
  /** The contact's labels (`/contacts/{id}/labels`). */
  labels?: string[];
}

export interface ContactInboxRecord {
  id: number;
  contact_id: number;
  inbox_id: number;
  source_id: string;
  created_at: number;
}

export type ConversationStatus = 'open' | 'resolved' | 'pending' | 'snoozed';

export interface CwConversationRecord {
  /** The display id (per account), the `id` the API and webhooks show. */
  id: number;
  account_id: number;
  inbox_id: number;
  contact_id: number;
  contact_inbox_id: number;
  status: ConversationStatus;
  /** ISO time, as the API shows it. */
  snoozed_until: string | null;
  created_at: number;
  updated_at: number;
  last_activity_at: number;
  additional_attributes: Record<string, unknown>;
  custom_attributes: Record<string, unknown>;
}

export interface AttachmentRecord {
  id: number;
  file_type: 'image' | 'audio' | 'video' | 'file';
  content_type: string;
  file_name: string;
  data: Buffer;
  data_url: string;
}

export interface CwMessageRecord {
  id: number;
  account_id: number;
  inbox_id: number;
  conversation_id: number;
  content: string | null;
  message_type: MessageType;
  content_type: string;
  private: boolean;
  source_id: string | null;
  status: MessageStatus;
  /** Every status the message had, in order (for tests: ticks must never go backwards). */
  statusHistory: MessageStatus[];
  content_attributes: Record<string, unknown>;
  attachments: AttachmentRecord[];
  /** Unix seconds, like the API. */
  created_at: number;
  /** Milliseconds, for the ISO `updated_at` of push payloads. */
  updated_at: number;
  sender: { type: 'contact' | 'user'; id: number } | null;
  echo_id?: string;
}

export interface AccountWebhookRecord {
  id: number;
  url: string;
  subscriptions: string[];
  secret?: string;
}

export interface AccountRecord {
  id: number;
  name: string;
  contacts: Map<number, CwContactRecord>;
  contactInboxes: ContactInboxRecord[];
  conversations: Map<number, CwConversationRecord>;
  /** Messages per conversation (display id), ascending by id. */
  messages: Map<number, CwMessageRecord[]>;
  /** Every live message of the account by id (PATCH and DELETE look-ups stay O(1)). */
  messageById: Map<number, CwMessageRecord>;
  nextDisplayId: number;
  webhooks: AccountWebhookRecord[];
  /** The token's owner's role in this account: what Chatwoot's policies check (administrator unless a test says otherwise). */
  tokenRole: AccountRole;
}

/** Chatwoot's validation answer (`RequestExceptionHandler#render_record_invalid`). */
export class RecordInvalid extends Error {
  constructor(
    message: string,
    readonly attributes: string[],
  ) {
    super(message);
  }
}

/** `ActiveRecord::RecordNotFound`: 404 `{"error":"Resource could not be found"}`. */
export class NotFound extends Error {}

/** An error whose status and body Chatwoot would send as is. */
export class HttpAnswer extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}`);
  }
}

/** What Rails answers for an unrescued `ActiveRecord::RecordNotUnique` (a 500). */
export const RECORD_NOT_UNIQUE_500 = { status: 500, error: 'Internal Server Error' };

const nowS = (): number => Math.floor(Date.now() / 1000);

/** `Limits::URL_LENGTH_LIMIT`. */
const URL_LENGTH_LIMIT = 2048;

/** Contact `phone_number` format (`Contact` model): note that the start is not anchored in Chatwoot either. */
const E164 = /\+[1-9]\d{1,14}$/;

export class Store {
  readonly accounts = new Map<number, AccountRecord>();
  readonly inboxes = new Map<number, InboxRecord>();
  /** Attachments by id, for the blob download route. */
  private readonly attachments = new Map<number, AttachmentRecord>();
  private seq = { account: 0, inbox: 0, contact: 0, contactInbox: 0, message: 0, attachment: 0, webhook: 0 };
  /** The token's owner: never auto-assigned; an administrator of each account unless its `tokenRole` says otherwise. */
  readonly user = { id: 1, name: 'Ponte API', email: 'api@ponte.invalid' };
  /** Every agent, the token's owner first. */
  readonly users = new Map<number, { id: number; name: string; email: string }>([[1, this.user]]);

  addUser(o: { name: string; email: string }): { id: number } {
    const id = this.users.size + 1;
    this.users.set(id, { id, name: o.name, email: o.email.toLowerCase() });
    return { id };
  }

  private userOf(id: number): { id: number; name: string; email: string } {
    return this.users.get(id) ?? this.user;
  }

  addAccount(): AccountRecord {
    const id = ++this.seq.account;
    const a: AccountRecord = {
      id,
      name: `Conta ${id}`,
      contacts: new Map(),
      contactInboxes: [],
      conversations: new Map(),
      messages: new Map(),
      messageById: new Map(),
      nextDisplayId: 1,
      webhooks: [],
      tokenRole: 'administrator',
    };
    this.accounts.set(id, a);
    return a;
  }

  addInbox(o: { accountId: number; name?: string; webhookUrl?: string; secret?: string; lockToSingleConversation?: boolean }): InboxRecord {
    this.account(o.accountId);
    const id = ++this.seq.inbox;
    const inbox: InboxRecord = {
      id,
      account_id: o.accountId,
      name: o.name ?? `Inbox ${id}`,
      webhook_url: o.webhookUrl ?? null,
      secret: o.secret ?? randomUUID().replace(/-/g, ''),
      lock_to_single_conversation: o.lockToSingleConversation ?? false,
      inbox_identifier: randomUUID().replace(/-/g, '').slice(0, 24),
      members: [],
    };
    this.inboxes.set(id, inbox);
    return inbox;
  }

  /** Another user of the installation, by id, or undefined. */
  userById(id: number): { id: number; name: string; email: string } | undefined {
    return this.users.get(id);
  }

  addWebhook(accountId: number, o: { url: string; subscriptions: string[]; secret?: string }): { id: number } {
    const account = this.account(accountId);
    const id = ++this.seq.webhook;
    account.webhooks.push({ id, url: o.url, subscriptions: [...o.subscriptions], ...(o.secret !== undefined ? { secret: o.secret } : {}) });
    return { id };
  }

  account(id: number): AccountRecord {
    const a = this.accounts.get(id);
    if (!a) throw new NotFound();
    return a;
  }

  inbox(account: AccountRecord, id: number): InboxRecord {
    const i = this.inboxes.get(id);
    if (!i || i.account_id !== account.id) throw new NotFound();
    return i;
  }

  contact(account: AccountRecord, id: number): CwContactRecord {
    const c = account.contacts.get(id);
    if (!c) throw new NotFound();
    return c;
  }

  conversation(account: AccountRecord, displayId: number): CwConversationRecord {
    const c = account.conversations.get(displayId);
    if (!c) throw new NotFound();
    return c;
  }

  // ── inboxes ────────────────────────────────────────────────────────────────

  /**
   * `InboxesController#create` for `channel.type: "api"`: the channel is
   * created first (`Channel::Api` validates `webhook_url` to 2,048
   * characters), then the inbox (`Inbox` validates a name is present).
   */
  createApiInbox(account: AccountRecord, o: { name: unknown; webhookUrl: unknown; lockToSingleConversation: unknown }): InboxRecord {
    const webhookUrl = typeof o.webhookUrl === 'string' && o.webhookUrl !== '' ? o.webhookUrl : undefined;
    this.validateWebhookUrl(webhookUrl);
    const name = typeof o.name === 'string' ? o.name : '';
    if (name.trim() === '') throw new RecordInvalid("Name can't be blank", ['name']);
    return this.addInbox({ accountId: account.id, name, ...(webhookUrl ? { webhookUrl } : {}), lockToSingleConversation: o.lockToSingleConversation === true });
  }

  /** `InboxesController#update`: the inbox's own fields, then the channel's (`Channel::Api::EDITABLE_ATTRS`). */
  updateInbox(inbox: InboxRecord, body: Record<string, unknown>): void {
    if (body.name !== undefined) {
      if (typeof body.name !== 'string' || body.name.trim() === '') throw new RecordInvalid("Name can't be blank", ['name']);
      inbox.name = body.name;
    }
    if (typeof body.lock_to_single_conversation === 'boolean') inbox.lock_to_single_conversation = body.lock_to_single_conversation;
    const channel = body.channel && typeof body.channel === 'object' && !Array.isArray(body.channel) ? (body.channel as Record<string, unknown>) : undefined;
    if (channel && 'webhook_url' in channel) {
      const url = typeof channel.webhook_url === 'string' && channel.webhook_url !== '' ? channel.webhook_url : null;
      this.validateWebhookUrl(url ?? undefined);
      inbox.webhook_url = url;
    }
  }

  private validateWebhookUrl(url: string | undefined): void {
    if (url !== undefined && url.length > URL_LENGTH_LIMIT) throw new RecordInvalid(`Webhook url is too long (maximum is ${URL_LENGTH_LIMIT} characters)`, ['webhook_url']);
  }

  /**
   * `Inbox#add_members`: `inbox_members.create!` for each user not yet a
   * member, in one transaction (a user that does not exist fails it whole:
   * "User must exist").
   */
  addInboxMembers(inbox: InboxRecord, userIds: number[]): void {
    const fresh = [...new Set(userIds)].filter((id) => !inbox.members.includes(id));
    if (fresh.some((id) => !this.users.has(id))) throw new RecordInvalid('User must exist', ['user']);
    inbox.members.push(...fresh);
  }

  /** The `agent` shape of `inbox_members` answers. */
  agentJson(account: AccountRecord, userId: number): Record<string, unknown> {
    const u = this.userOf(userId);
    const role: AccountRole = u.id === this.user.id ? account.tokenRole : 'agent';
    return { id: u.id, account_id: account.id, availability_status: 'online', auto_offline: true, confirmed: true, email: u.email, available_name: u.name, name: u.name, role, thumbnail: '', custom_role_id: null };
  }

  // ── contacts ───────────────────────────────────────────────────────────────

  /**
   * The `Contact` validations, in the model's order (email, identifier,
   * phone_number); every failing one is reported at once, as
   * `errors.full_messages.join(', ')` does.
   */
  private validateContact(account: AccountRecord, c: Partial<CwContactRecord>, selfId?: number): void {
    const errors: Array<[string, string]> = [];
    const others = [...account.contacts.values()].filter((o) => o.id !== selfId);
    if (c.email && others.some((o) => o.email?.toLowerCase() === c.email!.toLowerCase())) errors.push(['email', 'Email has already been taken']);
    if (c.identifier && others.some((o) => o.identifier === c.identifier)) errors.push(['identifier', 'Identifier has already been taken']);
    if (c.phone_number) {
      if (others.some((o) => o.phone_number === c.phone_number)) errors.push(['phone_number', 'Phone number has already been taken']);
      if (!E164.test(c.phone_number)) errors.push(['phone_number', 'Phone number should be in e164 format']);
    }
    if (errors.length > 0) throw new RecordInvalid(errors.map(([, m]) => m).join(', '), [...new Set(errors.map(([a]) => a))]);
  }

  createContact(account: AccountRecord, body: Record<string, unknown>): { contact: CwContactRecord; contactInbox: ContactInboxRecord | null } {
    const fields = contactFields(body);
    // `@contact.save!` first, then the inbox look-up (a 404 rolls the contact back).
    this.validateContact(account, fields);
    let inbox: InboxRecord | undefined;
    if (body.inbox_id !== undefined && body.inbox_id !== null) inbox = this.inbox(account, Number(body.inbox_id));
    const sourceId = typeof body.source_id === 'string' && body.source_id !== '' ? body.source_id : randomUUID();
    // The contact inbox is built in the same transaction: a source id owned
    // by another contact raises RecordNotUnique, which this action does not
    // rescue (a 500, the contact rolled back).
    if (inbox && account.contactInboxes.some((ci) => ci.inbox_id === inbox.id && ci.source_id === sourceId)) {
      throw new HttpAnswer(500, RECORD_NOT_UNIQUE_500);
    }
    const contact: CwContactRecord = {
      id: ++this.seq.contact,
      account_id: account.id,
      name: fields.name ?? '',
      phone_number: fields.phone_number || null,
      identifier: fields.identifier || null,
      email: fields.email || null,
      additional_attributes: fields.additional_attributes ?? {},
      custom_attributes: fields.custom_attributes ?? {},
      created_at: nowS(),
      last_activity_at: null,
    };
    account.contacts.set(contact.id, contact);
    const contactInbox = inbox ? this.addContactInbox(account, contact.id, inbox.id, sourceId) : null;
    return { contact, contactInbox };
  }

  /** PUT: plain fields replaced, `additional_attributes`/`custom_attributes` merged. Returns the changed keys. */
  updateContact(account: AccountRecord, contact: CwContactRecord, body: Record<string, unknown>): string[] {
    const fields = contactFields(body);
    const next: CwContactRecord = { ...contact, ...stripUndefined(fields) };
    for (const k of ['phone_number', 'identifier', 'email'] as const) if (next[k] === '') next[k] = null;
    next.additional_attributes = { ...contact.additional_attributes, ...(fields.additional_attributes ?? {}) };
    next.custom_attributes = { ...contact.custom_attributes, ...(fields.custom_attributes ?? {}) };
    this.validateContact(account, next, contact.id);
    const changed = (Object.keys(next) as Array<keyof CwContactRecord>).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(contact[k]));
    Object.assign(contact, next);
    return changed;
  }

  private addContactInbox(account: AccountRecord, contactId: number, inboxId: number, sourceId: string): ContactInboxRecord {
    const ci = { id: ++this.seq.contactInbox, contact_id: contactId, inbox_id: inboxId, source_id: sourceId, created_at: Date.now() };
    account.contactInboxes.push(ci);
    return ci;
  }

  /**
   * `ContactInboxBuilder` for an API inbox: `ContactInbox.where(contact,
   * inbox, source_id).first_or_create!`, a new UUID when `source_id` is
   * missing, and RecordNotUnique (never re-keyed for API inboxes) when
   * another contact owns the source id: the conversations controller
   * rescues it as 422, the contact-inboxes controller does not (500).
   */
  contactInboxFor(account: AccountRecord, contactId: number, inboxId: number, sourceId: string | undefined, conflict: 'raise422' | 'raise500'): ContactInboxRecord {
    const sid = sourceId ?? randomUUID();
    const existing = account.contactInboxes.find((ci) => ci.inbox_id === inboxId && ci.source_id === sid);
    if (existing) {
      if (existing.contact_id === contactId) return existing;
      if (conflict === 'raise422') throw new HttpAnswer(422, { error: 'source_id should be unique' });
      throw new HttpAnswer(500, RECORD_NOT_UNIQUE_500);
    }
    return this.addContactInbox(account, contactId, inboxId, sid);
  }

  /**
   * `ContactMergeAction`: conversations, messages sent by the mergee and
   * contact inboxes move to the base; the mergee is destroyed; then the
   * base takes `mergee.deep_merge(base)` of the non-blank mergeable
   * attributes (the base wins, its blanks are filled from the mergee).
   */
  merge(account: AccountRecord, baseId: number, mergeeId: number): CwContactRecord {
    const base = this.contact(account, baseId);
    const mergee = this.contact(account, mergeeId);
    if (base.id === mergee.id) throw new HttpAnswer(422, { error: 'Base contact and mergee contact cannot be the same' });
    for (const conv of account.conversations.values()) if (conv.contact_id === mergee.id) conv.contact_id = base.id;
    for (const m of account.messageById.values()) if (m.sender?.type === 'contact' && m.sender.id === mergee.id) m.sender = { type: 'contact', id: base.id };
    for (const ci of account.contactInboxes) if (ci.contact_id === mergee.id) ci.contact_id = base.id;
    account.contacts.delete(mergee.id);
    const blank = (v: unknown): boolean => v === null || v === undefined || v === '';
    for (const k of ['identifier', 'name', 'email', 'phone_number'] as const) if (blank(base[k]) && !blank(mergee[k])) base[k] = mergee[k];
    base.additional_attributes = deepMerge(mergee.additional_attributes, base.additional_attributes);
    base.custom_attributes = deepMerge(mergee.custom_attributes, base.custom_attributes);
    return base;
  }

  // ── conversations ──────────────────────────────────────────────────────────

  /**
   * `ConversationBuilder`: with `lock_to_single_conversation`, the contact
   * inbox's last conversation in any status; otherwise always a new one.
   */
  createConversation(
    account: AccountRecord,
    inbox: InboxRecord,
    contactInbox: ContactInboxRecord,
    o: { status?: ConversationStatus; additional_attributes?: Record<string, unknown>; custom_attributes?: Record<string, unknown> },
  ): { conversation: CwConversationRecord; created: boolean } {
    if (inbox.lock_to_single_conversation) {
      let last: CwConversationRecord | undefined;
      for (const c of account.conversations.values()) if (c.contact_inbox_id === contactInbox.id) last = c;
      if (last) return { conversation: last, created: false };
    }
    const t = nowS();
    const conv: CwConversationRecord = {
      id: account.nextDisplayId++,
      account_id: account.id,
      inbox_id: inbox.id,
      contact_id: contactInbox.contact_id,
      contact_inbox_id: contactInbox.id,
      status: o.status ?? 'open',
      snoozed_until: null,
      created_at: t,
      updated_at: Date.now() / 1000,
      last_activity_at: t,
      additional_attributes: o.additional_attributes ?? {},
      custom_attributes: o.custom_attributes ?? {},
    };
    account.conversations.set(conv.id, conv);
    return { conversation: conv, created: true };
  }

  /** Sets a status; returns the previous one when it changed. */
  setStatus(conv: CwConversationRecord, status: ConversationStatus, snoozedUntilS: number | null = null): ConversationStatus | undefined {
    const previous = conv.status;
    conv.snoozed_until = status === 'snoozed' && snoozedUntilS !== null ? new Date(snoozedUntilS * 1000).toISOString() : null;
    if (previous === status) return undefined;
    conv.status = status;
    conv.updated_at = Date.now() / 1000;
    return previous;
  }

  deleteConversation(account: AccountRecord, displayId: number): void {
    this.conversation(account, displayId);
    for (const m of account.messages.get(displayId) ?? []) {
      account.messageById.delete(m.id);
      for (const a of m.attachments) this.attachments.delete(a.id);
    }
    account.conversations.delete(displayId);
    account.messages.delete(displayId);
  }

  // ── messages ───────────────────────────────────────────────────────────────

  /**
   * Stores a message, with the model's callbacks: `ensure_in_reply_to`,
   * `reopen_conversation` (incoming on a resolved or snoozed conversation
   * → open) and the conversation's activity. Returns the previous status
   * when the conversation was reopened.
   */
  addMessage(
    account: AccountRecord,
    conv: CwConversationRecord,
    m: Omit<CwMessageRecord, 'id' | 'account_id' | 'inbox_id' | 'conversation_id' | 'created_at' | 'updated_at' | 'status' | 'statusHistory'>,
  ): { message: CwMessageRecord; reopenedFrom: ConversationStatus | undefined } {
    const msg: CwMessageRecord = {
      ...m,
      id: ++this.seq.message,
      account_id: account.id,
      inbox_id: conv.inbox_id,
      conversation_id: conv.id,
      created_at: nowS(),
      updated_at: Date.now(),
      status: 'sent',
      statusHistory: ['sent'],
    };
    this.ensureInReplyTo(account, conv, msg);
    const list = account.messages.get(conv.id);
    if (list) list.push(msg);
    else account.messages.set(conv.id, [msg]);
    account.messageById.set(msg.id, msg);
    conv.last_activity_at = msg.created_at;
    if (msg.sender?.type === 'contact') {
      const contact = account.contacts.get(msg.sender.id);
      if (contact) contact.last_activity_at = msg.created_at;
    }
    let reopenedFrom: ConversationStatus | undefined;
    if (msg.message_type === 'incoming' && (conv.status === 'resolved' || conv.status === 'snoozed')) reopenedFrom = this.setStatus(conv, 'open');
    return { message: msg, reopenedFrom };
  }

  /**
   * `Messages::InReplyToMessageBuilder`: when either reply key is present,
   * find the quoted message in the same conversation (by id, else by
   * source id) and overwrite both keys with its id and source id, or with
   * null when nothing matches.
   */
  private ensureInReplyTo(account: AccountRecord, conv: CwConversationRecord, msg: CwMessageRecord): void {
    const attrs = msg.content_attributes;
    const present = (v: unknown): boolean => v !== undefined && v !== null && v !== '';
    if (!present(attrs.in_reply_to) && !present(attrs.in_reply_to_external_id)) return;
    const list = account.messages.get(conv.id) ?? [];
    let found: CwMessageRecord | undefined;
    if (present(attrs.in_reply_to)) {
      const id = Number(attrs.in_reply_to);
      const candidate = account.messageById.get(id);
      found = candidate && candidate.conversation_id === conv.id ? candidate : undefined;
    } else {
      const sid = String(attrs.in_reply_to_external_id);
      found = list.find((x) => x.source_id === sid);
    }
    attrs.in_reply_to_external_id = found?.source_id ?? null;
    attrs.in_reply_to = found?.id ?? null;
  }

  newAttachment(contentType: string, fileName: string, data: Buffer, baseUrl: string): AttachmentRecord {
    const id = ++this.seq.attachment;
    const record: AttachmentRecord = {
      id,
      file_type: fileTypeOf(contentType),
      content_type: contentType,
      file_name: fileName,
      data,
      data_url: `${baseUrl}/rails/active_storage/blobs/redirect/${id}/${encodeURIComponent(fileName)}`,
    };
    this.attachments.set(id, record);
    return record;
  }

  /** An attachment still attached to a message (for the blob download route). */
  attachment(id: number): AttachmentRecord | undefined {
    return this.attachments.get(id);
  }

  conversationMessages(account: AccountRecord, displayId: number): CwMessageRecord[] {
    return account.messages.get(displayId) ?? [];
  }

  /** How many messages the conversation got since `sinceS` (its per-minute limit). */
  messagesSince(account: AccountRecord, displayId: number, sinceS: number): number {
    const list = this.conversationMessages(account, displayId);
    let n = 0;
    for (let i = list.length - 1; i >= 0 && list[i]!.created_at >= sinceS; i--) n++;
    return n;
  }

  /** A message of that conversation, or 404. */
  message(account: AccountRecord, displayId: number, messageId: number): CwMessageRecord {
    const m = account.messageById.get(messageId);
    if (!m || m.conversation_id !== displayId) throw new NotFound();
    return m;
  }

  /**
   * `Messages::StatusUpdateService`: unknown statuses and read → delivered
   * are silent no-ops; `external_error` is written (as null unless failed)
   * on every accepted update. Returns whether anything changed
   * (`message_updated` fires only then: `previous_changes.blank?`).
   */
  updateStatus(m: CwMessageRecord, status: unknown, externalError: unknown): boolean {
    if (typeof status !== 'string' || !(MESSAGE_STATUSES as readonly string[]).includes(status)) return false;
    if (m.status === 'read' && status === 'delivered') return false;
    const error = status === 'failed' && typeof externalError === 'string' ? externalError : null;
    const changed = m.status !== status || m.content_attributes.external_error !== error;
    if (m.status !== status) m.statusHistory.push(status as MessageStatus);
    m.status = status as MessageStatus;
    m.content_attributes = { ...m.content_attributes, external_error: error };
    if (changed) m.updated_at = Date.now();
    return changed;
  }

  /** DELETE: the soft delete of `MessagesController#destroy`. */
  softDelete(m: CwMessageRecord): void {
    for (const a of m.attachments) this.attachments.delete(a.id);
    m.content = 'This message was deleted';
    m.content_type = 'text';
    m.content_attributes = { deleted: true };
    m.attachments = [];
    m.updated_at = Date.now();
  }

  private lastPublic(account: AccountRecord, displayId: number): CwMessageRecord | undefined {
    const list = this.conversationMessages(account, displayId);
    for (let i = list.length - 1; i >= 0; i--) if (!list[i]!.private && list[i]!.message_type !== 'activity') return list[i];
    return undefined;
  }

  // ── JSON shapes ────────────────────────────────────────────────────────────

  /** `_inbox.json.jbuilder`; `hmac_token` and `secret` only when the token's owner administers the account. */
  inboxJson(i: InboxRecord): Record<string, unknown> {
    const admin = this.accounts.get(i.account_id)?.tokenRole !== 'agent';
    return {
      id: i.id,
      avatar_url: '',
      channel_id: i.id,
      name: i.name,
      channel_type: 'Channel::Api',
      greeting_enabled: false,
      greeting_message: null,
      working_hours_enabled: false,
      enable_email_collect: true,
      csat_survey_enabled: false,
      enable_auto_assignment: true,
      out_of_office_message: null,
      timezone: 'UTC',
      allow_messages_after_resolved: true,
      lock_to_single_conversation: i.lock_to_single_conversation,
      sender_name_type: 'friendly',
      business_name: null,
      webhook_url: i.webhook_url,
      inbox_identifier: i.inbox_identifier,
      additional_attributes: {},
      hmac_mandatory: false,
      ...(admin ? { hmac_token: 'hmac-token', secret: i.secret } : {}),
      provider: null,
    };
  }

  private contactInboxJson(ci: ContactInboxRecord): Record<string, unknown> {
    const inbox = this.inboxes.get(ci.inbox_id);
    return { source_id: ci.source_id, inbox: this.contactInboxInboxJson(ci.inbox_id, inbox?.name ?? '') };
  }

  /** The short inbox of `contact_inboxes[]` and of the contact-inbox create answer. */
  contactInboxInboxJson(inboxId: number, name: string): Record<string, unknown> {
    return { id: inboxId, avatar_url: '', channel_id: inboxId, name, channel_type: 'Channel::Api', provider: null };
  }

  /** `api/v1/models/_contact`. */
  contactJson(account: AccountRecord, c: CwContactRecord, includeInboxes = true): Record<string, unknown> {
    return {
      additional_attributes: c.additional_attributes,
      availability_status: 'offline',
      email: c.email,
      id: c.id,
      name: c.name,
      phone_number: c.phone_number,
      blocked: false,
      identifier: c.identifier,
      thumbnail: '',
      custom_attributes: c.custom_attributes,
      last_activity_at: c.last_activity_at,
      created_at: c.created_at,
      ...(includeInboxes ? { contact_inboxes: account.contactInboxes.filter((ci) => ci.contact_id === c.id).map((ci) => this.contactInboxJson(ci)) } : {}),
    };
  }

  /** `Contact#webhook_data` (message `sender`, contact events): no `type`. */
  contactWebhookJson(account: AccountRecord, c: CwContactRecord): Record<string, unknown> {
    return {
      account: { id: account.id, name: account.name },
      additional_attributes: c.additional_attributes,
      avatar: '',
      custom_attributes: c.custom_attributes,
      email: c.email,
      id: c.id,
      identifier: c.identifier,
      name: c.name,
      phone_number: c.phone_number,
      thumbnail: '',
      blocked: false,
    };
  }

  /** `Contact#push_event_data`. */
  private contactPushJson(c: CwContactRecord): Record<string, unknown> {
    return {
      additional_attributes: c.additional_attributes,
      custom_attributes: c.custom_attributes,
      email: c.email,
      id: c.id,
      identifier: c.identifier,
      name: c.name,
      phone_number: c.phone_number,
      thumbnail: '',
      blocked: false,
      type: 'contact',
    };
  }

  /** `User#push_event_data`. */
  private userPushJson(id: number): Record<string, unknown> {
    const u = this.userOf(id);
    return { id: u.id, name: u.name, available_name: u.name, avatar_url: '', type: 'user', availability_status: 'online', thumbnail: '' };
  }

  private senderPushJson(account: AccountRecord, m: CwMessageRecord): Record<string, unknown> | null {
    if (m.sender?.type === 'contact') {
      const c = account.contacts.get(m.sender.id);
      return c ? this.contactPushJson(c) : null;
    }
    if (m.sender?.type === 'user') return this.userPushJson(m.sender.id);
    return null;
  }

  /** `api/v1/models/_message`: what message create, PATCH, DELETE and the list answer. `message_type` is an integer. */
  messageJson(account: AccountRecord, m: CwMessageRecord): Record<string, unknown> {
    return {
      id: m.id,
      content: m.content,
      inbox_id: m.inbox_id,
      conversation_id: m.conversation_id,
      message_type: MESSAGE_TYPE_NUMBER[m.message_type],
      content_type: m.content_type,
      status: m.status,
      content_attributes: m.content_attributes,
      created_at: m.created_at,
      private: m.private,
      source_id: m.source_id,
      sender: this.senderPushJson(account, m),
      ...(m.attachments.length > 0 ? { attachments: m.attachments.map((a) => this.attachmentJson(m, a)) } : {}),
      ...(m.echo_id !== undefined ? { echo_id: m.echo_id } : {}),
    };
  }

  /** `Attachment#push_event_data`. */
  attachmentJson(m: CwMessageRecord, a: AttachmentRecord): Record<string, unknown> {
    return {
      id: a.id,
      message_id: m.id,
      file_type: a.file_type,
      account_id: m.account_id,
      extension: a.file_name.includes('.') ? (a.file_name.split('.').pop() ?? null) : null,
      content_type: a.content_type,
      data_url: a.data_url,
      thumb_url: a.file_type === 'image' ? a.data_url : '',
      file_size: a.data.length,
      width: null,
      height: null,
      ...(a.file_type === 'audio' ? { transcribed_text: '' } : {}),
    };
  }

  /** `Message#push_event_data`: `conversation.messages[0]` of conversation payloads. */
  private messagePushJson(account: AccountRecord, conv: CwConversationRecord, m: CwMessageRecord): Record<string, unknown> {
    const ci = account.contactInboxes.find((x) => x.id === conv.contact_inbox_id);
    return {
      id: m.id,
      content: m.content,
      account_id: m.account_id,
      inbox_id: m.inbox_id,
      conversation_id: m.conversation_id,
      message_type: MESSAGE_TYPE_NUMBER[m.message_type],
      created_at: m.created_at,
      updated_at: new Date(m.updated_at).toISOString(),
      private: m.private,
      status: m.status,
      source_id: m.source_id,
      content_type: m.content_type,
      content_attributes: m.content_attributes,
      sender_type: m.sender?.type === 'user' ? 'User' : m.sender?.type === 'contact' ? 'Contact' : null,
      sender_id: m.sender?.id ?? null,
      external_source_ids: {},
      additional_attributes: {},
      processed_message_content: m.content,
      sentiment: {},
      conversation: { assignee_id: null, unread_count: 0, last_activity_at: conv.last_activity_at, contact_inbox: { source_id: ci?.source_id ?? null } },
      ...(m.attachments.length > 0 ? { attachments: m.attachments.map((a) => this.attachmentJson(m, a)) } : {}),
      sender: this.senderPushJson(account, m),
    };
  }

  /** `api/v1/conversations/partials/_conversation`. */
  conversationJson(account: AccountRecord, conv: CwConversationRecord): Record<string, unknown> {
    const contact = account.contacts.get(conv.contact_id);
    const ci = account.contactInboxes.find((x) => x.id === conv.contact_inbox_id);
    const last = this.lastPublic(account, conv.id);
    return {
      meta: { sender: contact ? this.contactPushJson(contact) : null, channel: 'Channel::Api', hmac_verified: false },
      id: conv.id,
      messages: last ? [this.messagePushJson(account, conv, last)] : [],
      account_id: account.id,
      uuid: `00000000-0000-4000-8000-${String(account.id).padStart(4, '0')}${String(conv.id).padStart(8, '0')}`,
      additional_attributes: conv.additional_attributes,
      agent_last_seen_at: 0,
      assignee_last_seen_at: 0,
      can_reply: true,
      contact_last_seen_at: 0,
      custom_attributes: conv.custom_attributes,
      inbox_id: conv.inbox_id,
      labels: [],
      muted: false,
      snoozed_until: conv.snoozed_until,
      status: conv.status,
      contact_inbox: ci ? { source_id: ci.source_id } : null,
      created_at: conv.created_at,
      updated_at: conv.updated_at,
      timestamp: conv.last_activity_at,
      first_reply_created_at: 0,
      unread_count: 0,
      last_non_activity_message: last ? this.messagePushJson(account, conv, last) : null,
      last_activity_at: conv.last_activity_at,
      priority: null,
      waiting_since: 0,
      sla_policy_id: null,
    };
  }

  /** `Conversations::EventDataPresenter#webhook_data`. */
  conversationWebhookJson(account: AccountRecord, conv: CwConversationRecord): Record<string, unknown> {
    const contact = account.contacts.get(conv.contact_id);
    const ci = account.contactInboxes.find((x) => x.id === conv.contact_inbox_id);
    const last = this.lastPublic(account, conv.id);
    const ciTime = ci ? new Date(ci.created_at).toISOString() : null;
    return {
      additional_attributes: conv.additional_attributes,
      can_reply: true,
      channel: 'Channel::Api',
      contact_inbox: ci
        ? { id: ci.id, contact_id: ci.contact_id, inbox_id: ci.inbox_id, source_id: ci.source_id, created_at: ciTime, updated_at: ciTime, hmac_verified: false, pubsub_token: `pubsub-${ci.id}` }
        : null,
      id: conv.id,
      inbox_id: conv.inbox_id,
      messages: last ? [this.messagePushJson(account, conv, last)] : [],
      labels: [],
      meta: {
        sender: contact ? this.contactPushJson(contact) : null,
        assignee: null,
        assignee_type: null,
        team: null,
        hmac_verified: false,
      },
      status: conv.status,
      custom_attributes: conv.custom_attributes,
      snoozed_until: conv.snoozed_until,
      unread_count: 0,
      first_reply_created_at: null,
      priority: null,
      waiting_since: 0,
      agent_last_seen_at: 0,
      contact_last_seen_at: 0,
      last_activity_at: conv.last_activity_at,
      timestamp: conv.last_activity_at,
      created_at: conv.created_at,
      updated_at: conv.updated_at,
      account: { id: account.id, name: account.name },
    };
  }

  /** `Message#webhook_data` (+ `event`): `message_type` is a string here, and there is no `status`. */
  messageWebhookJson(account: AccountRecord, m: CwMessageRecord, event: string): Record<string, unknown> {
    const conv = account.conversations.get(m.conversation_id);
    const inbox = this.inboxes.get(m.inbox_id);
    let sender: unknown = null;
    if (m.sender?.type === 'contact') {
      const c = account.contacts.get(m.sender.id);
      sender = c ? this.contactWebhookJson(account, c) : null;
    } else if (m.sender?.type === 'user') {
      const u = this.userOf(m.sender.id);
      sender = { id: u.id, name: u.name, email: u.email, type: 'user' };
    }
    return {
      account: { id: account.id, name: account.name },
      additional_attributes: {},
      content_attributes: m.content_attributes,
      content_type: m.content_type,
      content: m.content,
      conversation: conv ? this.conversationWebhookJson(account, conv) : null,
      created_at: new Date(m.created_at * 1000).toISOString(),
      id: m.id,
      inbox: { id: m.inbox_id, name: inbox?.name ?? '' },
      message_type: m.message_type,
      private: m.private,
      sender,
      source_id: m.source_id,
      ...(m.attachments.length > 0 ? { attachments: m.attachments.map((a) => this.attachmentJson(m, a)) } : {}),
      event,
    };
  }
}

function contactFields(body: Record<string, unknown>): Partial<CwContactRecord> {
  const str = (k: string): string | undefined => {
    const v = body[k];
    return typeof v === 'string' ? v : undefined;
  };
  const obj = (k: string): Record<string, unknown> | undefined =>
    body[k] && typeof body[k] === 'object' && !Array.isArray(body[k]) ? (body[k] as Record<string, unknown>) : undefined;
  const email = str('email');
  return stripUndefined({
    name: str('name'),
    phone_number: str('phone_number'),
    identifier: str('identifier'),
    // `prepare_email_attribute`: stored lower-cased.
    email: email?.toLowerCase(),
    additional_attributes: obj('additional_attributes'),
    custom_attributes: obj('custom_attributes'),
  });
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Ruby's `Hash#deep_merge`: `over` wins, nested hashes merge. */
function deepMerge(under: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...under };
  for (const [k, v] of Object.entries(over)) {
    const u = out[k];
    const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
    out[k] = isObj(u) && isObj(v) ? deepMerge(u, v) : v;
  }
  return out;
}

/** Attachment `file_type` from the part's Content-Type (`reference/chatwoot.md` §2.6). */
export function fileTypeOf(contentType: string): AttachmentRecord['file_type'] {
  const ct = contentType.toLowerCase().split(';')[0]!.trim();
  if (['image/jpeg', 'image/jpg', 'image/png', 'image/gif', 'image/bmp', 'image/webp'].includes(ct)) return 'image';
  if (['video/ogg', 'video/mp4', 'video/webm', 'video/quicktime'].includes(ct)) return 'video';
  if (ct.includes('audio/')) return 'audio';
  return 'file';
}
