/**
 * Chatwoot's entities and request bodies as Ponte uses them, and the client contract.
 *
 * Chatwoot entities as its Application API returns them (only the fields
 * Ponte reads), request bodies Ponte sends, and the client contract
 * ({@link ChatwootClientLike}) the rest of the daemon codes against.
 * `reference/chatwoot.md` (shared) is the source for every shape here.
 */

export interface CwContactInbox {
  source_id: string;
  inbox: { id: number; channel_type?: string; name?: string };
}

export interface CwContact {
  id: number;
  name: string | null;
  phone_number: string | null;
  identifier: string | null;
  email?: string | null;
  additional_attributes?: Record<string, unknown>;
  custom_attributes?: Record<string, unknown>;
  contact_inboxes?: CwContactInbox[];
}

export interface CwInbox {
  id: number;
  name: string;
  channel_type: string;
  webhook_url?: string | null;
  /** Webhook signing secret; only present for administrators. */
  secret?: string | null;
  lock_to_single_conversation?: boolean;
}

/** `POST /inboxes` for an API channel (`reference/chatwoot.md` §2.1); administrators only. */
export interface CreateInboxBody {
  name: string;
  lock_to_single_conversation?: boolean;
  channel: { type: 'api'; webhook_url?: string; hmac_mandatory?: boolean };
}

/** `PATCH /inboxes/{id}`: channel fields go under `channel`; administrators only. */
export interface UpdateInboxBody {
  name?: string;
  channel?: { webhook_url?: string; hmac_mandatory?: boolean };
}

/** `GET /api/v1/profile`: the token's own user and its role in each of its accounts. */
export interface CwProfile {
  id: number;
  name: string;
  email: string;
  /** `role` is `administrator` or `agent` (a custom role is an agent with `custom_role_id`). */
  accounts: Array<{ id: number; name?: string; role: string }>;
}

export type CwConversationStatus = 'open' | 'resolved' | 'pending' | 'snoozed';

export interface CwConversation {
  /** The display id, used in every path. */
  id: number;
  inbox_id: number;
  status: CwConversationStatus;
  contact_inbox?: { source_id: string } | null;
  meta?: { sender?: { id: number } };
  last_activity_at?: number;
}

export type CwMessageStatus = 'sent' | 'delivered' | 'read' | 'failed';

export interface CwMessage {
  id: number;
  content: string | null;
  /** 0 incoming, 1 outgoing, 2 activity, 3 template (integers in API responses). */
  message_type: number | string;
  source_id: string | null;
  status?: CwMessageStatus;
  private?: boolean;
  content_attributes?: Record<string, unknown>;
  created_at?: number;
  conversation_id?: number;
}

export interface CreateContactBody {
  inbox_id: number;
  source_id?: string;
  name?: string;
  phone_number?: string;
  identifier?: string;
  avatar_url?: string;
  additional_attributes?: Record<string, unknown>;
  custom_attributes?: Record<string, unknown>;
}

export type UpdateContactBody = Partial<Omit<CreateContactBody, 'inbox_id' | 'source_id'>>;

export interface CreateConversationBody {
  source_id: string;
  inbox_id: number;
  contact_id: number;
  status?: CwConversationStatus;
  additional_attributes?: Record<string, unknown>;
  custom_attributes?: Record<string, unknown>;
}

export interface CreateMessageBody {
  content?: string;
  message_type: 'incoming' | 'outgoing';
  private?: boolean;
  /** `input_select`: a question with options (`content_attributes.items`), as Chatwoot bots write it. */
  content_type?: 'text' | 'input_select';
  source_id?: string;
  content_attributes?: Record<string, unknown>;
  external_created_at?: number;
  /** Multipart only: show an `audio/*` attachment as a voice note. */
  is_voice_message?: boolean;
}

/** A file for a multipart message create: small ones in memory, media spooled to a temporary file (streamed from disk). */
export type MessageAttachment = { fileName: string; contentType: string } & ({ data: Buffer } | { file: string; bytes: number });

/** One clause of `POST /contacts/filter`. */
export interface CwFilterClause {
  attribute_key: string;
  filter_operator: 'equal_to' | 'not_equal_to' | 'contains' | 'does_not_contain' | 'starts_with';
  values: Array<string | number>;
  /** Joins this clause to the next; leave it out on the last clause. */
  query_operator?: 'AND' | 'OR';
}

/**
 * What the daemon needs from Chatwoot. Every method rejects with a
 * `ChatwootError` subclass (`chatwoot/errors.ts`) whose `code` says what to
 * do: retry later, back off (rate limited), give up (permanent), or look
 * before re-sending (lost response).
 */
export interface ChatwootClientLike {
  getInbox(accountId: number, inboxId: number): Promise<CwInbox>;
  listInboxes(accountId: number): Promise<CwInbox[]>;
  createInbox(accountId: number, body: CreateInboxBody): Promise<CwInbox>;
  updateInbox(accountId: number, inboxId: number, body: UpdateInboxBody): Promise<CwInbox>;
  /** Adds users to the inbox's members (those already members stay; nobody is removed). */
  addInboxMembers(accountId: number, inboxId: number, userIds: readonly number[]): Promise<void>;
  /** The token's own user. */
  getProfile(): Promise<CwProfile>;

  getContact(accountId: number, contactId: number): Promise<CwContact>;
  searchContacts(accountId: number, query: string, page?: number): Promise<CwContact[]>;
  filterContacts(accountId: number, clauses: CwFilterClause[], page?: number): Promise<CwContact[]>;
  createContact(accountId: number, body: CreateContactBody): Promise<{ contact: CwContact; contactInbox: CwContactInbox | null }>;
  updateContact(accountId: number, contactId: number, body: UpdateContactBody): Promise<CwContact>;
  mergeContacts(accountId: number, baseContactId: number, mergeeContactId: number): Promise<void>;
  createContactInbox(accountId: number, contactId: number, inboxId: number, sourceId: string): Promise<CwContactInbox>;
  /** The contact owning `sourceId` in `inboxId`, or `null` when none does. */
  findContactBySourceId(accountId: number, inboxId: number, sourceId: string): Promise<CwContact | null>;

  contactLabels(accountId: number, contactId: number): Promise<string[]>;
  /** Sets the contact's labels (Chatwoot replaces the whole list). */
  setContactLabels(accountId: number, contactId: number, labels: readonly string[]): Promise<string[]>;
  listContactConversations(accountId: number, contactId: number): Promise<CwConversation[]>;
  getConversation(accountId: number, conversationId: number): Promise<CwConversation>;
  createConversation(accountId: number, body: CreateConversationBody): Promise<CwConversation>;

  createMessage(accountId: number, conversationId: number, body: CreateMessageBody): Promise<CwMessage>;
  createMessageWithAttachments(
    accountId: number,
    conversationId: number,
    body: CreateMessageBody,
    attachments: readonly MessageAttachment[],
  ): Promise<CwMessage>;
  /** Latest messages (`before`/`after` a message id, as Chatwoot pages them), oldest first. */
  listMessages(accountId: number, conversationId: number, cursor?: { before?: number; after?: number }): Promise<CwMessage[]>;
  updateMessageStatus(accountId: number, conversationId: number, messageId: number, status: CwMessageStatus, externalError?: string): Promise<CwMessage>;
  deleteMessage(accountId: number, conversationId: number, messageId: number): Promise<void>;
}
