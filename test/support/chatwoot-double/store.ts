/**
 * The double's memory: accounts, inboxes, contacts, contact inboxes,
 * conversations and messages, with Chatwoot's rules (uniqueness per account,
 * contact-inbox `source_id` per inbox, soft delete, status transitions), and
 * the JSON shapes its API and webhooks answer with.
 */
import { randomUUID } from 'node:crypto';

export type MessageType = 'incoming' | 'outgoing' | 'activity' | 'template';
const MESSAGE_TYPE_NUMBER: Record<MessageType, number> = { incoming: 0, outgoing: 1, activity: 2, template: 3 };

export interface InboxRecord {
  id: number;
  account_id: number;
  name: string;
  webhook_url: string | null;
  secret: string;
  lock_to_single_conversation: boolean;
  inbox_identifier: string;
}

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
}

export interface ContactInboxRecord {
  id: number;
  contact_id: number;
  inbox_id: number;
  source_id: string;
}

export type ConversationStatus = 'open' | 'resolved' | 'pending' | 'snoozed';

export interface CwConversationRecord {
  id: number;
  account_id: number;
  inbox_id: number;
  contact_id: number;
  contact_inbox_id: number;
  status: ConversationStatus;
  created_at: number;
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
  status: 'sent' | 'delivered' | 'read' | 'failed';
  content_attributes: Record<string, unknown>;
  attachments: AttachmentRecord[];
  created_at: number;
  sender: { type: 'contact' | 'user'; id: number } | null;
  echo_id?: string;
}

export interface AccountRecord {
  id: number;
  name: string;
  contacts: Map<number, CwContactRecord>;
  contactInboxes: ContactInboxRecord[];
  conversations: Map<number, CwConversationRecord>;
  /** Messages per conversation (display id), ascending by id. */
  messages: Map<number, CwMessageRecord[]>;
  nextDisplayId: number;
  webhooks: Array<{ id: number; url: string; subscriptions: string[]; secret?: string }>;
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

const nowS = (): number => Math.floor(Date.now() / 1000);

export class Store {
  readonly accounts = new Map<number, AccountRecord>();
  readonly inboxes = new Map<number, InboxRecord>();
  private seq = { account: 0, inbox: 0, contact: 0, contactInbox: 0, message: 0, attachment: 0, webhook: 0 };
  readonly user = { id: 1, name: 'Ponte API', email: 'api@ponte.invalid' };

  addAccount(): AccountRecord {
    const id = ++this.seq.account;
    const a: AccountRecord = { id, name: `Conta ${id}`, contacts: new Map(), contactInboxes: [], conversations: new Map(), messages: new Map(), nextDisplayId: 1, webhooks: [] };
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
    };
    this.inboxes.set(id, inbox);
    return inbox;
  }

  addWebhook(accountId: number, o: { url: string; subscriptions: string[]; secret?: string }): { id: number } {
    const id = ++this.seq.webhook;
    this.account(accountId).webhooks.push({ id, ...o });
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

  // ── contacts ───────────────────────────────────────────────────────────────

  private validateContact(account: AccountRecord, c: Partial<CwContactRecord>, selfId?: number): void {
    if (c.phone_number != null && c.phone_number !== '' && !/^\+[1-9]\d{1,14}$/.test(c.phone_number)) {
      throw new RecordInvalid('Phone number should be in e164 format', ['phone_number']);
    }
    for (const other of account.contacts.values()) {
      if (other.id === selfId) continue;
      if (c.phone_number && other.phone_number === c.phone_number) throw new RecordInvalid('Phone number has already been taken', ['phone_number']);
      if (c.identifier && other.identifier === c.identifier) throw new RecordInvalid('Identifier has already been taken', ['identifier']);
      if (c.email && other.email?.toLowerCase() === c.email.toLowerCase()) throw new RecordInvalid('Email has already been taken', ['email']);
    }
  }

  createContact(account: AccountRecord, body: Record<string, unknown>): { contact: CwContactRecord; contactInbox: ContactInboxRecord | null } {
    const fields = contactFields(body);
    this.validateContact(account, fields);
    let inbox: InboxRecord | undefined;
    if (body.inbox_id !== undefined) inbox = this.inbox(account, Number(body.inbox_id));
    const sourceId = typeof body.source_id === 'string' && body.source_id !== '' ? body.source_id : randomUUID();
    // The contact inbox is built in the same transaction: a source id owned
    // by another contact raises RecordNotUnique, which this action does not
    // rescue (a 500, the contact rolled back).
    if (inbox && account.contactInboxes.some((ci) => ci.inbox_id === inbox.id && ci.source_id === sourceId)) {
      throw new HttpAnswer(500, { error: 'PG::UniqueViolation: duplicate key value violates unique constraint' });
    }
    const contact: CwContactRecord = {
      id: ++this.seq.contact,
      account_id: account.id,
      name: fields.name ?? null,
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

  updateContact(account: AccountRecord, contact: CwContactRecord, body: Record<string, unknown>): CwContactRecord {
    const fields = contactFields(body);
    const next = { ...contact, ...stripUndefined(fields) };
    next.additional_attributes = { ...contact.additional_attributes, ...(fields.additional_attributes ?? {}) };
    next.custom_attributes = { ...contact.custom_attributes, ...(fields.custom_attributes ?? {}) };
    this.validateContact(account, next, contact.id);
    Object.assign(contact, next);
    return contact;
  }

  private addContactInbox(account: AccountRecord, contactId: number, inboxId: number, sourceId: string): ContactInboxRecord {
    const ci = { id: ++this.seq.contactInbox, contact_id: contactId, inbox_id: inboxId, source_id: sourceId };
    account.contactInboxes.push(ci);
    return ci;
  }

  /** `ContactInbox.where(contact, inbox, source_id).first_or_create!`; another contact's source id raises. */
  contactInboxFor(account: AccountRecord, contactId: number, inboxId: number, sourceId: string | undefined, conflict: 'raise422' | 'raise500'): ContactInboxRecord {
    const sid = sourceId ?? randomUUID();
    const existing = account.contactInboxes.find((ci) => ci.inbox_id === inboxId && ci.source_id === sid);
    if (existing) {
      if (existing.contact_id === contactId) return existing;
      if (conflict === 'raise422') throw new HttpAnswer(422, { error: 'source_id should be unique' });
      throw new HttpAnswer(500, { error: 'PG::UniqueViolation: duplicate key value violates unique constraint' });
    }
    return this.addContactInbox(account, contactId, inboxId, sid);
  }

  merge(account: AccountRecord, baseId: number, mergeeId: number): CwContactRecord {
    const base = this.contact(account, baseId);
    const mergee = this.contact(account, mergeeId);
    if (base.id === mergee.id) throw new HttpAnswer(422, { error: 'Base contact and mergee contact cannot be the same' });
    for (const conv of account.conversations.values()) if (conv.contact_id === mergee.id) conv.contact_id = base.id;
    for (const ci of account.contactInboxes) if (ci.contact_id === mergee.id) ci.contact_id = base.id;
    account.contacts.delete(mergee.id);
    base.phone_number ??= mergee.phone_number;
    base.identifier ??= mergee.identifier;
    base.email ??= mergee.email;
    base.additional_attributes = { ...mergee.additional_attributes, ...base.additional_attributes };
    return base;
  }

  // ── conversations ──────────────────────────────────────────────────────────

  createConversation(account: AccountRecord, inbox: InboxRecord, contactInbox: ContactInboxRecord, status: ConversationStatus | undefined): CwConversationRecord {
    if (inbox.lock_to_single_conversation) {
      const last = [...account.conversations.values()].filter((c) => c.contact_inbox_id === contactInbox.id).at(-1);
      if (last) return last;
    }
    const t = nowS();
    const conv: CwConversationRecord = {
      id: account.nextDisplayId++,
      account_id: account.id,
      inbox_id: inbox.id,
      contact_id: contactInbox.contact_id,
      contact_inbox_id: contactInbox.id,
      status: status ?? 'open',
      created_at: t,
      last_activity_at: t,
      additional_attributes: {},
      custom_attributes: {},
    };
    account.conversations.set(conv.id, conv);
    return conv;
  }

  deleteConversation(account: AccountRecord, displayId: number): void {
    this.conversation(account, displayId);
    account.conversations.delete(displayId);
    account.messages.delete(displayId);
  }

  // ── messages ───────────────────────────────────────────────────────────────

  addMessage(account: AccountRecord, conv: CwConversationRecord, m: Omit<CwMessageRecord, 'id' | 'account_id' | 'inbox_id' | 'conversation_id' | 'created_at' | 'status'>): CwMessageRecord {
    const msg: CwMessageRecord = { ...m, id: ++this.seq.message, account_id: account.id, inbox_id: conv.inbox_id, conversation_id: conv.id, created_at: nowS(), status: 'sent' };
    const list = account.messages.get(conv.id);
    if (list) list.push(msg);
    else account.messages.set(conv.id, [msg]);
    conv.last_activity_at = msg.created_at;
    // Message#reopen_conversation
    if (msg.message_type === 'incoming' && (conv.status === 'resolved' || conv.status === 'snoozed')) conv.status = 'open';
    return msg;
  }

  newAttachment(contentType: string, fileName: string, data: Buffer, baseUrl: string): AttachmentRecord {
    const id = ++this.seq.attachment;
    return { id, file_type: fileTypeOf(contentType), content_type: contentType, file_name: fileName, data, data_url: `${baseUrl}/rails/active_storage/blobs/redirect/${id}/${encodeURIComponent(fileName)}` };
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

  message(account: AccountRecord, displayId: number, messageId: number): CwMessageRecord {
    const m = this.conversationMessages(account, displayId).find((x) => x.id === messageId);
    if (!m) throw new NotFound();
    return m;
  }

  private lastPublic(account: AccountRecord, displayId: number): CwMessageRecord | undefined {
    const list = this.conversationMessages(account, displayId);
    for (let i = list.length - 1; i >= 0; i--) if (!list[i]!.private && list[i]!.message_type !== 'activity') return list[i];
    return undefined;
  }

  // ── JSON shapes ────────────────────────────────────────────────────────────

  inboxJson(i: InboxRecord): Record<string, unknown> {
    return {
      id: i.id,
      channel_id: i.id,
      name: i.name,
      channel_type: 'Channel::Api',
      lock_to_single_conversation: i.lock_to_single_conversation,
      webhook_url: i.webhook_url,
      inbox_identifier: i.inbox_identifier,
      additional_attributes: {},
      hmac_token: 'hmac',
      secret: i.secret,
    };
  }

  private contactInboxJson(ci: ContactInboxRecord): Record<string, unknown> {
    const inbox = this.inboxes.get(ci.inbox_id);
    return { source_id: ci.source_id, inbox: { id: ci.inbox_id, avatar_url: '', channel_id: ci.inbox_id, name: inbox?.name ?? '', channel_type: 'Channel::Api', provider: null } };
  }

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

  messageJson(m: CwMessageRecord): Record<string, unknown> {
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
      sender: m.sender,
      ...(m.attachments.length > 0 ? { attachments: m.attachments.map((a) => this.attachmentJson(m, a)) } : {}),
      ...(m.echo_id !== undefined ? { echo_id: m.echo_id } : {}),
    };
  }

  attachmentJson(m: CwMessageRecord, a: AttachmentRecord): Record<string, unknown> {
    return {
      id: a.id,
      message_id: m.id,
      file_type: a.file_type,
      account_id: m.account_id,
      extension: a.file_name.includes('.') ? a.file_name.split('.').pop() : null,
      content_type: a.content_type,
      data_url: a.data_url,
      thumb_url: a.file_type === 'image' ? a.data_url : '',
      file_size: a.data.length,
      width: null,
      height: null,
    };
  }

  conversationJson(account: AccountRecord, conv: CwConversationRecord): Record<string, unknown> {
    const contact = account.contacts.get(conv.contact_id);
    const ci = account.contactInboxes.find((x) => x.id === conv.contact_inbox_id);
    const last = this.lastPublic(account, conv.id);
    return {
      meta: { sender: contact ? { ...this.contactJson(account, contact, false), type: 'contact' } : null, channel: 'Channel::Api', hmac_verified: false },
      id: conv.id,
      messages: last ? [this.messageJson(last)] : [],
      account_id: account.id,
      uuid: `conv-${account.id}-${conv.id}`,
      additional_attributes: conv.additional_attributes,
      can_reply: true,
      custom_attributes: conv.custom_attributes,
      inbox_id: conv.inbox_id,
      labels: [],
      muted: false,
      snoozed_until: null,
      status: conv.status,
      contact_inbox: ci ? { source_id: ci.source_id } : null,
      created_at: conv.created_at,
      timestamp: conv.last_activity_at,
      unread_count: 0,
      last_activity_at: conv.last_activity_at,
      priority: null,
      waiting_since: 0,
    };
  }

  /** `Conversations::EventDataPresenter#webhook_data`. */
  conversationWebhookJson(account: AccountRecord, conv: CwConversationRecord): Record<string, unknown> {
    const contact = account.contacts.get(conv.contact_id);
    const ci = account.contactInboxes.find((x) => x.id === conv.contact_inbox_id);
    const last = this.lastPublic(account, conv.id);
    return {
      additional_attributes: conv.additional_attributes,
      can_reply: true,
      channel: 'Channel::Api',
      contact_inbox: ci ? { id: ci.id, contact_id: ci.contact_id, inbox_id: ci.inbox_id, source_id: ci.source_id, hmac_verified: false } : null,
      id: conv.id,
      inbox_id: conv.inbox_id,
      messages: last ? [{ ...this.messageJson(last), account_id: account.id, sender_type: last.sender?.type === 'user' ? 'User' : 'Contact', sender_id: last.sender?.id ?? null }] : [],
      labels: [],
      meta: {
        sender: contact ? { ...this.contactWebhookJson(account, contact), type: 'contact' } : null,
        assignee: null,
        assignee_type: null,
        team: null,
        hmac_verified: false,
      },
      status: conv.status,
      custom_attributes: conv.custom_attributes,
      snoozed_until: null,
      unread_count: 0,
      first_reply_created_at: null,
      priority: null,
      waiting_since: 0,
      agent_last_seen_at: 0,
      contact_last_seen_at: 0,
      last_activity_at: conv.last_activity_at,
      timestamp: conv.last_activity_at,
      created_at: conv.created_at,
      updated_at: conv.last_activity_at,
      account: { id: account.id, name: account.name },
    };
  }

  /** `Message#webhook_data` + event. */
  messageWebhookJson(account: AccountRecord, m: CwMessageRecord, event: string): Record<string, unknown> {
    const conv = account.conversations.get(m.conversation_id);
    const inbox = this.inboxes.get(m.inbox_id);
    let sender: unknown = null;
    if (m.sender?.type === 'contact') {
      const c = account.contacts.get(m.sender.id);
      sender = c ? this.contactWebhookJson(account, c) : null;
    } else if (m.sender?.type === 'user') {
      sender = { id: this.user.id, name: this.user.name, email: this.user.email, type: 'user' };
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
  const str = (k: string): string | undefined => { const v = body[k]; return typeof v === 'string' ? v : undefined; };
  const obj = (k: string): Record<string, unknown> | undefined =>
    body[k] && typeof body[k] === 'object' && !Array.isArray(body[k]) ? (body[k] as Record<string, unknown>) : undefined;
  return stripUndefined({
    name: str('name'),
    phone_number: str('phone_number'),
    identifier: str('identifier'),
    email: str('email'),
    additional_attributes: obj('additional_attributes'),
    custom_attributes: obj('custom_attributes'),
  });
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Attachment `file_type` from the part's Content-Type (`reference/chatwoot.md` §2.6). */
export function fileTypeOf(contentType: string): AttachmentRecord['file_type'] {
  const ct = contentType.toLowerCase().split(';')[0]!.trim();
  if (['image/jpeg', 'image/jpg', 'image/png', 'image/gif', 'image/bmp', 'image/webp'].includes(ct)) return 'image';
  if (['video/ogg', 'video/mp4', 'video/webm', 'video/quicktime'].includes(ct)) return 'video';
  if (ct.includes('audio/')) return 'audio';
  return 'file';
}
