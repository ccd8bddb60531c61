import type {
  proto} from '@whiskeysockets/baileys';
import {
  type WAMessage,
  getContentType,
  isJidBroadcast,
  isJidGroup,
  isJidNewsletter,
  isLidUser,
  isPnUser,
  jidNormalizedUser,
  normalizeMessageContent,
  toNumber,
} from '@whiskeysockets/baileys';
import type { InboundContent, InboundMessage, WaPerson } from '../model/inbound.js';

export type NormalizeResult = { ok: true; message: InboundMessage } | { ok: false; reason: string };

/**
 * Content types that are never a message of their own: protocol traffic
 * (revoke and edit arrive again as `messages.update`), reactions (again as
 * `messages.reaction`), poll votes, key distribution.
 */
const NOT_A_MESSAGE = new Set<string>([
  'protocolMessage',
  'reactionMessage',
  'pollUpdateMessage',
  'senderKeyDistributionMessage',
  'encReactionMessage',
  'keepInChatMessage',
  'pinInChatMessage',
  'messageHistoryBundle',
]);

/**
 * Turns one `messages.upsert` entry into Ponte's {@link InboundMessage}, or
 * says why it is not relayed. Pure: no I/O, no Baileys socket.
 *
 * - Status updates (`status@broadcast`), broadcast lists, newsletters and
 *   system stubs are not conversations and are ignored.
 * - A person is kept under both addresses WhatsApp gave: `remoteJid` and
 *   `remoteJidAlt` (or `participant` / `participantAlt` in groups) are a
 *   phone-number JID and a LID in either order (`reference/baileys.md` §3);
 *   device suffixes are dropped.
 * - `pushName` names the sender, so it is only a contact name when the
 *   message was not sent from the owner's phone.
 */
export function normalizeMessage(msg: WAMessage, upsertType: 'notify' | 'append'): NormalizeResult {
  const key = msg.key;
  const remoteJid = key?.remoteJid ? jidNormalizedUser(key.remoteJid) : '';
  const waId = key?.id ?? '';
  if (!remoteJid || !waId) return { ok: false, reason: 'no chat or id' };
  if (isJidBroadcast(remoteJid)) return { ok: false, reason: 'status or broadcast list' };
  if (isJidNewsletter(remoteJid)) return { ok: false, reason: 'newsletter' };
  if (!msg.message) return { ok: false, reason: msg.messageStubType ? 'system stub' : 'no content' };

  const content = normalizeMessageContent(msg.message);
  const type = content ? getContentType(content) : undefined;
  if (!content || !type) return { ok: false, reason: 'no content' };
  if (NOT_A_MESSAGE.has(type)) return { ok: false, reason: type };

  const fromMe = key.fromMe === true;
  const pushName = !fromMe && msg.pushName ? msg.pushName : undefined;
  const timestampS = msg.messageTimestamp ? toNumber(msg.messageTimestamp) : Math.floor(Date.now() / 1000);
  const quotedWaId = contextOf(content, type)?.stanzaId ?? undefined;

  const base = {
    waId,
    fromMe,
    timestampS,
    upsertType,
    content: contentOf(content, type),
    ...(quotedWaId ? { quotedWaId } : {}),
  };

  if (isJidGroup(remoteJid)) {
    // `participant` is '' in 1:1 chats after Baileys' cleanMessage; test with ||.
    const participant = fromMe ? undefined : personOf(key.participant || undefined, key.participantAlt || undefined, pushName);
    return {
      ok: true,
      message: { ...base, chatId: remoteJid, chatKind: 'group', peer: {}, ...(participant ? { participant } : {}) },
    };
  }

  // A direct chat: the peer is the chat itself, for messages in both directions.
  const peer = personOf(remoteJid, key.remoteJidAlt || undefined, pushName);
  if (!peer) return { ok: false, reason: `unknown address ${remoteJid}` };
  return { ok: true, message: { ...base, chatId: peer.pnJid ?? peer.lidJid!, chatKind: 'direct', peer } };
}

/** A person from a primary JID and its alternate (one phone-number JID, one LID, in either order). */
function personOf(primary: string | undefined, alt: string | undefined, pushName: string | undefined): WaPerson | undefined {
  const person: WaPerson = {};
  for (const raw of [primary, alt]) {
    if (!raw) continue;
    const jid = jidNormalizedUser(raw);
    if (isPnUser(jid)) person.pnJid ??= jid;
    else if (isLidUser(jid)) person.lidJid ??= jid;
  }
  if (!person.pnJid && !person.lidJid) return undefined;
  if (pushName) person.pushName = pushName;
  return person;
}

function contentOf(content: proto.IMessage, type: keyof proto.IMessage): InboundContent {
  if (type === 'conversation' && content.conversation) return { kind: 'text', text: content.conversation };
  if (type === 'extendedTextMessage' && content.extendedTextMessage?.text) return { kind: 'text', text: content.extendedTextMessage.text };
  const caption = captionOf(content);
  return { kind: 'unsupported', waType: type, ...(caption ? { text: caption } : {}) };
}

function captionOf(content: proto.IMessage): string | undefined {
  return content.imageMessage?.caption ?? content.videoMessage?.caption ?? content.documentMessage?.caption ?? undefined;
}

function contextOf(content: proto.IMessage, type: keyof proto.IMessage): proto.IContextInfo | undefined {
  const inner = content[type];
  if (inner && typeof inner === 'object' && 'contextInfo' in inner) {
    return (inner).contextInfo ?? undefined;
  }
  return undefined;
}
