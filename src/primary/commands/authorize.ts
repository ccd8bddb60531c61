/** Who may give an operator command, decided from a Chatwoot `message_created` event (DESIGN.md, Decisions 8). */
import { canonicalBrazilian, digitsOf } from '../../lib/phone.js';
import type { RelayedMessage } from '../../model/relayed.js';
import { PONTE_SOURCE_PREFIX, waIdOfSourceId } from '../../model/source-id.js';

/** The fields of a Chatwoot `message_created` payload a command decision reads. */
export interface CommandEvent {
  event?: unknown;
  id?: unknown;
  content?: unknown;
  message_type?: unknown;
  private?: unknown;
  source_id?: unknown;
  account?: { id?: unknown };
  inbox?: { id?: unknown };
  conversation?: { id?: unknown };
  sender?: { id?: unknown; phone_number?: unknown; type?: unknown; email?: unknown } | null;
}

/** Who gave a command: a WhatsApp number (through a Ponte inbox) or a Chatwoot agent (and its user id, when the payload names it). */
export type CommandAuthor = { kind: 'phone'; digits: string } | { kind: 'agent'; email: string; userId?: number };

export interface CommandContext {
  messageId: number;
  accountId: number;
  inboxId: number;
  conversationId: number;
  author: CommandAuthor;
  /** Replies go as private notes (an agent's command), never to the customer of that conversation. */
  replyPrivately: boolean;
  text: string;
}

export interface AuthorizeDeps {
  /** `DEFAULT_RELAY_CHATWOOT_INBOX_ID`; 0 = any Ponte inbox of the account. */
  commandInboxId: number;
  authorizedPhones: readonly string[];
  /** Lower-cased. */
  authorizedAgentEmails: readonly string[];
  /** The delivery's `X-Chatwoot-Signature` was verified with the account webhook's secret. */
  signed: boolean;
  /** Whether `<account>-<inbox>` is one of Ponte's instances. */
  isPonteInbox(accountId: number, inboxId: number): Promise<boolean>;
  /** Ponte's record of a WhatsApp id it relayed into that inbox. */
  relayed(accountId: number, inboxId: number, waId: string): Promise<RelayedMessage | undefined>;
}

export type Decision = { act: true; ctx: CommandContext } | { act: false; reason: string; log: 'debug' | 'warn' };

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined);

/** Same number, whatever form (Brazilian mobiles with or without the ninth digit). */
export function samePhone(a: string, b: string): boolean {
  const x = digitsOf(a);
  const y = digitsOf(b);
  return x.length > 0 && canonicalBrazilian(x) === canonicalBrazilian(y);
}

/**
 * Whether a command message may be acted on, and how to answer it:
 * - From WhatsApp: an incoming, public message in a Ponte inbox (the command
 *   inbox when `DEFAULT_RELAY_CHATWOOT_INBOX_ID` is set) that Ponte itself
 *   relayed from a direct chat with a number in
 *   `WEBHOOK_AUTHORIZED_PHONE_NUMBERS` (its `WAID:` record says so). A
 *   contact's phone field is typed by agents and website visitors and proves
 *   nothing, so it is never read. Replies are outgoing messages: they reach
 *   the operator on WhatsApp.
 * - From Chatwoot: on a signed account webhook only, a private note or an
 *   outgoing message written by a user listed in
 *   `WEBHOOK_AUTHORIZED_AGENT_EMAILS`, in any inbox of the account. Replies
 *   are private notes, so they never reach a customer.
 */
export async function authorizeCommand(e: CommandEvent, deps: AuthorizeDeps): Promise<Decision> {
  if (e.event !== 'message_created') return { act: false, reason: `event ${String(e.event)}`, log: 'debug' };
  const sourceId = typeof e.source_id === 'string' ? e.source_id : '';
  if (sourceId.startsWith(PONTE_SOURCE_PREFIX)) return { act: false, reason: "Ponte's own reply", log: 'debug' };
  const messageId = num(e.id);
  const accountId = num(e.account?.id);
  const inboxId = num(e.inbox?.id);
  const conversationId = num(e.conversation?.id);
  if (!messageId || !accountId || !inboxId || !conversationId) return { act: false, reason: 'payload lacks message, account, inbox or conversation ids', log: 'warn' };
  const text = typeof e.content === 'string' ? e.content : '';
  const base = { messageId, accountId, inboxId, conversationId, text };

  if (e.message_type === 'incoming' && e.private !== true) {
    if (!(await deps.isPonteInbox(accountId, inboxId))) return { act: false, reason: `inbox ${inboxId} is not a Ponte inbox: only messages Ponte relayed from WhatsApp can be commands`, log: 'warn' };
    if (deps.commandInboxId !== 0 && inboxId !== deps.commandInboxId) return { act: false, reason: `inbox ${inboxId} is not the command inbox (${deps.commandInboxId})`, log: 'warn' };
    const waId = waIdOfSourceId(sourceId) ?? '';
    const record = waId ? await deps.relayed(accountId, inboxId, waId) : undefined;
    if (!record || record.messageId !== messageId || record.conversationId !== conversationId) return { act: false, reason: 'not a message Ponte relayed from WhatsApp', log: 'warn' };
    if (record.chatKind !== 'direct') return { act: false, reason: 'relayed from a group: commands are taken from direct chats only', log: 'warn' };
    if (!record.senderDigits || !deps.authorizedPhones.some((p) => samePhone(p, record.senderDigits))) {
      return { act: false, reason: `relayed from a number not in WEBHOOK_AUTHORIZED_PHONE_NUMBERS${record.senderDigits ? '' : ' (WhatsApp gave no number)'}`, log: 'warn' };
    }
    return { act: true, ctx: { ...base, author: { kind: 'phone', digits: record.senderDigits }, replyPrivately: false } };
  }

  if ((e.message_type === 'outgoing' || e.private === true) && e.sender?.type === 'user') {
    const email = typeof e.sender.email === 'string' ? e.sender.email.trim().toLowerCase() : '';
    if (!deps.signed) return { act: false, reason: 'an agent message on an unsigned delivery: agents are authorized only when CHATWOOT_ACCOUNT_WEBHOOK_SECRET verifies the account webhook', log: 'warn' };
    if (!email || !deps.authorizedAgentEmails.includes(email)) return { act: false, reason: 'agent not in WEBHOOK_AUTHORIZED_AGENT_EMAILS', log: 'warn' };
    const userId = num(e.sender.id);
    return { act: true, ctx: { ...base, author: { kind: 'agent', email, ...(userId !== undefined ? { userId } : {}) }, replyPrivately: true } };
  }
  const senderType = typeof e.sender?.type === 'string' ? e.sender.type : 'sender without type';
  return { act: false, reason: `a ${String(e.message_type)} message from a ${senderType}`, log: 'debug' };
}
