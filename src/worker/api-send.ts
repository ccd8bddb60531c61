/** The worker's side of `POST /api/send`: the number checked on WhatsApp, the contact and conversation in Chatwoot, the message posted there once per reference. */
import { rm } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type { ChatwootClientLike, CreateMessageBody, CwMessage } from '../chatwoot/types.js';
import { ControlError } from '../cluster/ipc.js';
import type { ContactResolver } from '../inbound/contact-resolver.js';
import { coerceError } from '../lib/errors.js';
import { decodeUriComponent, parseUrl } from '../lib/parse.js';
import { brazilianVariants, digitsOf, normalizePhone } from '../lib/phone.js';
import type { Logger } from '../observability/logger.js';
import { AttachmentFetchError, type AttachmentFetcher, type FetchedAttachment } from '../outbound/attachment-fetch.js';
import { decideInboxEvent, type OutboundJob } from '../outbound/inbox-events.js';
import { SEND_REFERENCE, type SendRecord, SendReferences, type SendResult } from '../outbound/send-references.js';
import type { RedisKeys } from '../redis/keys.js';
import { LockTimeoutError, withLocks } from '../redis/lock.js';
import type { WaSocket } from '../whatsapp/socket.js';

/** One send request as the primary validated it (checked again here, at the boundary). */
export interface ApiSendRequest {
  /** E.164 digits, Brazilian mobiles canonical. */
  to: string;
  text: string;
  attachmentUrl?: string;
  options?: string[];
  reference: string;
}


/** The request from IPC arguments; a malformed one is `bad_request`. */
export function parseApiSendRequest(args: Record<string, unknown>): ApiSendRequest {
  const to = typeof args.to === 'string' ? normalizePhone(args.to) : undefined;
  if (!to) throw new ControlError('bad_request', 'to: must be a phone number with country code');
  if (typeof args.text !== 'string') throw new ControlError('bad_request', 'text: must be a string');
  if (typeof args.reference !== 'string' || !SEND_REFERENCE.test(args.reference)) throw new ControlError('bad_request', 'reference: must be 1-100 letters, digits or . _ : -');
  const options = Array.isArray(args.options) ? args.options.filter((o): o is string => typeof o === 'string') : undefined;
  return {
    to,
    text: args.text,
    reference: args.reference,
    ...(typeof args.attachmentUrl === 'string' ? { attachmentUrl: args.attachmentUrl } : {}),
    ...(options && options.length > 0 ? { options } : {}),
  };
}

/**
 * Whether Ponte may send a proactive message to `jid`: the one place where
 * an opt-out is checked (refused with `opted_out`, 409). A send held back
 * by a limiter is never refused here: it is accepted and waits in the queue.
 */
export type ProactiveCheck = (jid: string) => Promise<void>;

export interface ApiSenderDeps {
  instanceKey: string;
  accountId: number;
  redis: Redis;
  keys: RedisKeys;
  chatwoot: ChatwootClientLike;
  attachments: AttachmentFetcher;
  resolver: ContactResolver;
  /** The open socket, or `undefined` while the instance is not connected. */
  socket(): WaSocket | undefined;
  mayContact?: ProactiveCheck;
  /** `OUTBOUND_MEDIA_TIMEOUT_MS`: the reference's lock outlives a send's attachment download. */
  mediaTimeoutMs: number;
  log: Logger;
}

/** How long a concurrent request with the same reference waits for the first to finish. */
const REFERENCE_WAIT_MS = 30_000;

export class ApiSender {
  private readonly references: SendReferences;

  constructor(private readonly deps: ApiSenderDeps) {
    this.references = new SendReferences(deps.redis, deps.keys, deps.instanceKey);
  }

  /**
   * Sends once per reference: under the reference's lock, a known one
   * answers what it created; a new one checks the number on WhatsApp,
   * resolves the person's contact and open conversation as inbound does,
   * posts the message as outgoing and records it before answering.
   */
  async send(request: ApiSendRequest): Promise<SendResult> {
    const { redis, keys, instanceKey } = this.deps;
    try {
      return await withLocks(
        redis,
        [keys.lock(`send:${instanceKey}:${request.reference}`)],
        async () => {
          const known = await this.references.get(request.reference);
          if (known) return { ...known, reference: request.reference, repeated: true };
          const record = await this.create(request);
          await this.references.save(request.reference, record);
          return { ...record, reference: request.reference, repeated: false };
        },
        { ttlMs: this.deps.mediaTimeoutMs + 60_000, waitMs: REFERENCE_WAIT_MS },
      );
    } catch (err) {
      if (err instanceof LockTimeoutError) throw new ControlError('timeout', `a request with reference ${request.reference} is still being sent; ask again in a moment`);
      throw err;
    }
  }

  private async create(request: ApiSendRequest): Promise<SendRecord> {
    const socket = this.deps.socket();
    if (!socket) throw new ControlError('not_connected', `instance ${this.deps.instanceKey} is not connected to WhatsApp; the message was not accepted`);
    const found = (await socket.onWhatsApp(...brazilianVariants(request.to))).find((r) => r.exists);
    if (!found) throw new ControlError('not_on_whatsapp', `+${request.to} is not on WhatsApp`);
    const jid = `${digitsOf(found.jid)}@s.whatsapp.net`;
    await this.deps.mayContact?.(jid);
    const file = request.attachmentUrl ? await this.download(request.attachmentUrl) : undefined;
    try {
      const conversationId = await this.openConversation(jid);
      const body = messageBody(request);
      const message = await this.post(conversationId, body, request.attachmentUrl, file);
      return { conversationId, messageId: message.id, job: this.jobOf(conversationId, jid, body, message) };
    } finally {
      if (file) await rm(file.file, { force: true }).catch(() => undefined);
    }
  }

  /** The attachment, from Chatwoot or a host of OUTBOUND_MEDIA_HOSTS (Decisions 15); any other is refused before anything is created. */
  private async download(url: string): Promise<FetchedAttachment> {
    try {
      return await this.deps.attachments.fetchToFile(url);
    } catch (err) {
      if (!(err instanceof AttachmentFetchError)) throw err;
      this.deps.log.info({ reason: err.reason, err: coerceError(err) }, 'send API attachment refused');
      const why = err.reason === 'host_not_allowed' ? 'its host is not Chatwoot and not in OUTBOUND_MEDIA_HOSTS' : err.agentMessage;
      throw new ControlError('attachment_refused', `attachmentUrl: could not be used: ${why}`);
    }
  }

  /** The person's conversation in this inbox that is not resolved: the chat's own, or a new one (a resolved one is not written into). */
  private async openConversation(jid: string): Promise<number> {
    const { resolver, chatwoot, accountId } = this.deps;
    const target = await resolver.resolvePerson(jid, { pnJid: jid });
    const conversation = await chatwoot.getConversation(accountId, target.conversationId).catch(() => undefined);
    if (conversation && conversation.status !== 'resolved') return target.conversationId;
    await resolver.forget(jid);
    return (await resolver.resolvePerson(jid, { pnJid: jid })).conversationId;
  }

  private post(conversationId: number, body: CreateMessageBody, url: string | undefined, file: FetchedAttachment | undefined): Promise<CwMessage> {
    const { chatwoot, accountId } = this.deps;
    if (!file || !url) return chatwoot.createMessage(accountId, conversationId, body);
    const fileName = fileNameOf(url);
    return chatwoot.createMessageWithAttachments(accountId, conversationId, body, [{ fileName, contentType: file.contentType ?? 'application/octet-stream', file: file.file, bytes: file.bytes }]);
  }

  /** The job the inbox webhook would make of this message, with the chat's JID as the contact inbox's source id, marked proactive. */
  private jobOf(conversationId: number, jid: string, body: CreateMessageBody, message: CwMessage): OutboundJob {
    const decision = decideInboxEvent(
      {
        event: 'message_created',
        message_type: 'outgoing',
        private: false,
        id: message.id,
        content: message.content,
        content_type: body.content_type ?? 'text',
        content_attributes: body.content_attributes ?? {},
        attachments: (message as { attachments?: unknown }).attachments ?? [],
        account: { id: this.deps.accountId },
        conversation: { id: conversationId, contact_inbox: { source_id: jid }, meta: { sender: { phone_number: `+${digitsOf(jid)}`, identifier: jid } } },
      },
      { commandKeyword: '', agentEmails: [] },
    );
    if (decision.action !== 'queue') throw new Error(`the sent message did not make a job: ${decision.reason}`);
    return { ...decision.job, origin: 'api' };
  }
}

/** The Chatwoot message of a request: its options as a bot's `input_select` (the bot renderer sends them and routes the answer). */
function messageBody(request: ApiSendRequest): CreateMessageBody {
  return {
    content: request.text,
    message_type: 'outgoing',
    ...(request.options ? { content_type: 'input_select', content_attributes: { items: request.options.map((title) => ({ title, value: title })) } } : {}),
  };
}

/** The last path segment of the attachment's URL, decoded, or `attachment`. */
function fileNameOf(url: string): string {
  const last = parseUrl(url)?.pathname.split('/').pop() ?? '';
  return (decodeUriComponent(last) ?? last) || 'attachment';
}
