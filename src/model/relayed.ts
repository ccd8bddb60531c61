/**
 * The record of each relayed WhatsApp message: its Chatwoot message, chat and author.
 *
 * What Ponte records for each WhatsApp message it relayed into Chatwoot: where it went, which chat it
 * belongs to and who wrote it. Stored as the value of the WhatsApp id ⇄ Chatwoot id mapping.
 */
import { canonicalBrazilian, digitsOf } from '../lib/phone.js';
import { parseJson } from '../lib/parse.js';
import type { InboundMessage } from './inbound.js';

export interface RelayedMessage {
  conversationId: number;
  messageId: number;
  /** Ponte's chat id (the alias that joins a person's phone number and LID); '' for records older than this field. */
  chatId: string;
  chatKind: 'direct' | 'group' | 'unknown';
  /** Who wrote it: `me` (the number's own phone) or the sender's JIDs (phone number and/or LID). Empty when unknown. */
  author: 'me' | readonly string[];
  /** Digits of the sender's phone number when WhatsApp gave it ('' otherwise, and for `me`). */
  senderDigits: string;
}

interface Stored {
  c: number;
  m: number;
  chat: string;
  k: 'd' | 'g';
  a: 'me' | string[];
  s: string;
}

export function encodeRelayed(r: RelayedMessage): string {
  const stored: Stored = { c: r.conversationId, m: r.messageId, chat: r.chatId, k: r.chatKind === 'group' ? 'g' : 'd', a: r.author === 'me' ? 'me' : [...r.author], s: r.senderDigits };
  return JSON.stringify(stored);
}

/**
 * Reads a mapping value: the JSON record, or the older `<conversationId>:<messageId>[:<sender digits>]`
 * form, which names no chat or author (so nothing that needs them is allowed on it).
 */
export function parseRelayed(v: string): RelayedMessage | undefined {
  if (v.startsWith('{')) {
    const s = parseJson(v) as Partial<Stored> | null | undefined;
    if (!s || typeof s !== 'object') return undefined;
    if (typeof s.c !== 'number' || typeof s.m !== 'number') return undefined;
    return {
      conversationId: s.c,
      messageId: s.m,
      chatId: typeof s.chat === 'string' ? s.chat : '',
      chatKind: s.k === 'g' ? 'group' : s.k === 'd' ? 'direct' : 'unknown',
      author: s.a === 'me' ? 'me' : Array.isArray(s.a) ? s.a.filter((j): j is string => typeof j === 'string') : [],
      senderDigits: typeof s.s === 'string' ? s.s : '',
    };
  }
  const [c, m, sender] = v.split(':');
  const conversationId = Number(c);
  const messageId = Number(m);
  if (!Number.isSafeInteger(conversationId) || !Number.isSafeInteger(messageId)) return undefined;
  return { conversationId, messageId, chatId: '', chatKind: 'unknown', author: [], senderDigits: sender ?? '' };
}

/**
 * Whether `writer` (the author of a later message: `me`, or its JIDs) wrote the relayed message too.
 * Records without an author never match.
 */
export function sameAuthor(recorded: RelayedMessage['author'], writer: 'me' | readonly string[]): boolean {
  if (recorded === 'me' || writer === 'me') return recorded === writer;
  return recorded.some((j) => writer.includes(j));
}

/** The author of an inbound message as {@link RelayedMessage} records it: `me`, or the writer's JIDs (phone numbers in canonical form). */
export function authorOf(message: InboundMessage): 'me' | string[] {
  if (message.fromMe) return 'me';
  const person = message.chatKind === 'group' ? message.participant : message.peer;
  const jids: string[] = [];
  if (person?.pnJid) jids.push(`${canonicalBrazilian(digitsOf(person.pnJid))}@s.whatsapp.net`);
  if (person?.lidJid) jids.push(person.lidJid);
  return jids;
}

/** Digits of the writer's phone number, when WhatsApp gave it ('' for the number's own phone). */
export function senderDigitsOf(message: InboundMessage): string {
  if (message.fromMe) return '';
  const jid = message.chatKind === 'group' ? message.participant?.pnJid : message.peer.pnJid;
  return jid ? digitsOf(jid) : '';
}
