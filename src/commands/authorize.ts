import { canonicalBrazilian, digitsOf } from '../lib/phone.js';

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
  sender?: { phone_number?: unknown; type?: unknown } | null;
}

export interface CommandContext {
  messageId: number;
  accountId: number;
  inboxId: number;
  conversationId: number;
  senderPhone: string;
  text: string;
}

export interface AuthorizeDeps {
  /** `DEFAULT_RELAY_CHATWOOT_INBOX_ID`; 0 = any inbox. */
  commandInboxId: number;
  authorizedPhones: readonly string[];
  /** The instance record of `<account>-<inbox>`, when that inbox is one of Ponte's. */
  isPonteInbox(accountId: number, inboxId: number): Promise<boolean>;
  /** Ponte's record of a WhatsApp id it relayed into that inbox: where it went and who wrote it. */
  relayed(accountId: number, inboxId: number, waId: string): Promise<{ conversationId: number; messageId: number; senderDigits: string } | undefined>;
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
 * Whether a command message may be acted on (DESIGN.md, Decisions 8): an
 * incoming, public `message_created` in the command inbox, from a phone in
 * `WEBHOOK_AUTHORIZED_PHONE_NUMBERS`. When the command inbox is one of
 * Ponte's, the message must also be one Ponte relayed from WhatsApp from
 * that same number: a phone typed into a contact, or a website visitor,
 * never authorizes.
 */
export async function authorizeCommand(e: CommandEvent, deps: AuthorizeDeps): Promise<Decision> {
  if (e.event !== 'message_created') return { act: false, reason: `event ${String(e.event)}`, log: 'debug' };
  if (e.message_type !== 'incoming') return { act: false, reason: 'not an incoming message', log: 'debug' };
  if (e.private === true) return { act: false, reason: 'private note', log: 'debug' };
  const messageId = num(e.id);
  const accountId = num(e.account?.id);
  const inboxId = num(e.inbox?.id);
  const conversationId = num(e.conversation?.id);
  if (!messageId || !accountId || !inboxId || !conversationId) return { act: false, reason: 'payload lacks message, account, inbox or conversation ids', log: 'warn' };
  if (deps.commandInboxId !== 0 && inboxId !== deps.commandInboxId) return { act: false, reason: `inbox ${inboxId} is not the command inbox`, log: 'debug' };
  const text = typeof e.content === 'string' ? e.content : '';
  const senderPhone = typeof e.sender?.phone_number === 'string' ? e.sender.phone_number : '';
  if (!senderPhone || !deps.authorizedPhones.some((p) => samePhone(p, senderPhone))) {
    return { act: false, reason: `sender ${senderPhone ? 'phone is not authorized' : 'has no phone number'}`, log: 'warn' };
  }
  if (await deps.isPonteInbox(accountId, inboxId)) {
    const sourceId = typeof e.source_id === 'string' ? e.source_id : '';
    const waId = sourceId.startsWith('WAID:') ? sourceId.slice(5) : '';
    const record = waId ? await deps.relayed(accountId, inboxId, waId) : undefined;
    if (!record || record.messageId !== messageId || record.conversationId !== conversationId) {
      return { act: false, reason: 'not a message Ponte relayed from WhatsApp', log: 'warn' };
    }
    if (!samePhone(record.senderDigits, senderPhone)) return { act: false, reason: 'relayed from another number than the contact shows', log: 'warn' };
  }
  return { act: true, ctx: { messageId, accountId, inboxId, conversationId, senderPhone, text } };
}
