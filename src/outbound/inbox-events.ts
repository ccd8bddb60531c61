/**
 * Decides what Ponte does with each event Chatwoot posts to an inbox webhook (pure).
 *
 * What Ponte does with an event Chatwoot posts to an instance's inbox
 * webhook (`reference/chatwoot.md` §3). The inbox webhook receives
 * everything in the inbox, Ponte's own doings included, so most events are
 * acknowledged and ignored. Pure: the route queues what this returns.
 */
import { decodeUriComponent, parseUrl } from '../lib/parse.js';
import { waIdOfSourceId } from '../model/source-id.js';
import { type BotContent, parseBotContent } from './bot-content.js';

export interface OutboundAttachment {
  url: string;
  /** Chatwoot's `file_type`: image, video, audio, file, location, contact… */
  fileType: string;
  contentType?: string;
  fileName: string;
  size?: number;
}

export interface OutboundJob {
  /**
   * `send`: a new agent message; `delete`: deleted in Chatwoot; `update`:
   * any other change Chatwoot announced (a status Ponte itself reported, or
   * an agent pressing Retry): the consumer tells them apart from its records.
   */
  kind: 'send' | 'delete' | 'update';
  accountId: number;
  conversationId: number;
  messageId: number;
  content: string | null;
  /** A bot message's options, cards, form or articles (`content_type` and `content_attributes`); absent for plain text. */
  bot?: BotContent;
  attachments: OutboundAttachment[];
  /** Chatwoot id of the message this one replies to. */
  inReplyTo?: number;
  senderName?: string;
  contact: { phone?: string; identifier?: string; sourceId?: string };
  receivedAtMs: number;
  /** `api`: a proactive message from the send API (no customer wrote first); absent for agents' and bots' messages. */
  origin?: 'api';
}

export type InboxDecision = { action: 'queue'; job: OutboundJob } | { action: 'ignore'; reason: string };

/** What the decision needs to know of the configuration. */
export interface InboxEventRules {
  /** `WEBHOOK_COMMAND_KEYWORD`: an authorized agent's command is carried out by the command webhook, never sent to the customer. */
  commandKeyword: string;
  /** `WEBHOOK_AUTHORIZED_AGENT_EMAILS`, lower-cased. */
  agentEmails: readonly string[];
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined);

/** The last path segment of an attachment URL, decoded; '' when the URL or its escapes are malformed (the send then fails with a reason). */
function fileNameOf(url: string): string {
  const last = parseUrl(url)?.pathname.split('/').pop();
  if (last === undefined) return '';
  return decodeUriComponent(last) ?? last;
}

export function decideInboxEvent(p: Json, rules: InboxEventRules, nowMs = Date.now()): InboxDecision {
  const event = p.event;
  if (event !== 'message_created' && event !== 'message_updated') return { action: 'ignore', reason: `event ${String(event)}` };
  const type = p.message_type;
  if (type !== 'outgoing' && type !== 'template') return { action: 'ignore', reason: `${String(type)} message` };
  if (p.private === true) return { action: 'ignore', reason: 'private note' };
  const sourceId = str(p.source_id);
  if (waIdOfSourceId(sourceId) !== undefined) return { action: 'ignore', reason: 'relayed from WhatsApp by Ponte' };
  const attrs = obj(p.content_attributes) ?? {};
  const conversation = obj(p.conversation) ?? {};
  const messageId = num(p.id);
  const conversationId = num(conversation.id);
  const accountId = num(obj(p.account)?.id);
  if (!messageId || !conversationId || !accountId) return { action: 'ignore', reason: 'payload lacks message, conversation or account ids' };

  let kind: OutboundJob['kind'] = 'send';
  if (event === 'message_updated') {
    if (attrs.deleted === true) kind = 'delete';
    // A failure report (Ponte's own, or Chatwoot's when a webhook failed)
    // carries external_error; other status changes set it to null, and a
    // Retry clears content_attributes: those are updates, told apart by the
    // consumer from its records.
    else if (typeof attrs.external_error === 'string' && attrs.external_error !== '') return { action: 'ignore', reason: 'failure report' };
    else kind = 'update';
  }
  const sender = obj(obj(conversation.meta)?.sender) ?? {};
  const contactInbox = obj(conversation.contact_inbox) ?? {};
  const agent = obj(p.sender);
  const agentEmail = typeof agent?.email === 'string' ? agent.email.trim().toLowerCase() : '';
  if (agent?.type === 'user' && agentEmail && rules.agentEmails.includes(agentEmail) && firstWord(p.content) === rules.commandKeyword) {
    return { action: 'ignore', reason: 'an operator command (answered by the command webhook)' };
  }
  const attachments = (Array.isArray(p.attachments) ? p.attachments : []).map(obj).filter((a): a is Json => a !== undefined && str(a.data_url) !== undefined);
  const inReplyTo = num(attrs.in_reply_to);
  const bot = parseBotContent(p.content_type, attrs);
  return {
    action: 'queue',
    job: {
      kind,
      accountId,
      conversationId,
      messageId,
      content: typeof p.content === 'string' ? p.content : null,
      ...(bot ? { bot } : {}),
      attachments: attachments.map((a) => {
        const url = str(a.data_url)!;
        const last = fileNameOf(url);
        return {
          url,
          fileType: str(a.file_type) ?? 'file',
          ...(str(a.content_type) ? { contentType: str(a.content_type)! } : {}),
          fileName: last || `file.${str(a.extension) ?? 'bin'}`,
          ...(num(a.file_size) ? { size: num(a.file_size)! } : {}),
        };
      }),
      ...(inReplyTo ? { inReplyTo } : {}),
      ...(agent && agent.type === 'user' && str(agent.name) ? { senderName: str(agent.name)! } : {}),
      contact: {
        ...(str(sender.phone_number) ? { phone: str(sender.phone_number)! } : {}),
        ...(str(sender.identifier) ? { identifier: str(sender.identifier)! } : {}),
        ...(str(contactInbox.source_id) ? { sourceId: str(contactInbox.source_id)! } : {}),
      },
      receivedAtMs: nowMs,
    },
  };
}

function firstWord(content: unknown): string {
  return typeof content === 'string' ? (content.trim().split(/\s+/)[0] ?? '').toLowerCase() : '';
}
