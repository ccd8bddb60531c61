/** Turns Baileys messages, receipts and calls into Ponte's inbound model (pure). */
import {
  type WACallEvent,
  type WAMessage,
  BufferJSON,
  proto,
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
 * Content types that are never a message of their own: key distribution,
 * pins, keep-in-chat. Reactions, edits and revokes are relayed from their raw
 * upsert, so they stay in order with the messages of their chat (their
 * derived `messages.reaction` / `messages.update` events are not used).
 */
const NOT_A_MESSAGE = new Set<string>([
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
  const rendered = contentOf(msg, content, type);
  if (!rendered) return { ok: false, reason: `empty ${type}` };

  const base = {
    waId,
    fromMe,
    timestampS,
    upsertType,
    content: rendered,
    ...(quotedWaId ? { quotedWaId } : {}),
    remoteJid: key.remoteJid!,
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

function contentOf(msg: WAMessage, content: proto.IMessage, type: keyof proto.IMessage): InboundContent | undefined {
  const c = content;
  switch (type) {
    case 'conversation':
      return c.conversation ? { kind: 'text', text: c.conversation } : undefined;
    case 'extendedTextMessage': {
      const e = c.extendedTextMessage;
      if (!e?.text) return undefined;
      return { kind: 'text', text: e.text, ...(e.title ? { linkTitle: e.title } : {}) };
    }
    case 'imageMessage':
    case 'videoMessage':
    case 'audioMessage':
    case 'documentMessage':
    case 'stickerMessage':
      return mediaOf(msg, content, type);
    case 'locationMessage':
    case 'liveLocationMessage': {
      const l = type === 'locationMessage' ? c.locationMessage : c.liveLocationMessage;
      if (!l || l.degreesLatitude == null || l.degreesLongitude == null) return undefined;
      const named = 'name' in l && l.name ? { name: l.name } : {};
      const address = 'address' in l && l.address ? { address: l.address } : {};
      return { kind: 'location', latitude: l.degreesLatitude, longitude: l.degreesLongitude, ...named, ...address, live: type === 'liveLocationMessage' };
    }
    case 'contactMessage':
    case 'contactsArrayMessage': {
      const cards = type === 'contactMessage' ? [c.contactMessage] : (c.contactsArrayMessage?.contacts ?? []);
      const contacts = cards
        .filter((x): x is proto.Message.IContactMessage => Boolean(x?.vcard))
        .map((x) => ({ name: x.displayName ?? /FN:(.*)/.exec(x.vcard!)?.[1]?.trim() ?? 'Contact', phones: phonesOfVcard(x.vcard!), vcard: x.vcard! }));
      return contacts.length > 0 ? { kind: 'contacts', contacts } : undefined;
    }
    case 'pollCreationMessage':
    case 'pollCreationMessageV2':
    case 'pollCreationMessageV3': {
      const poll = c[type];
      if (!poll?.name) return undefined;
      const secret = msg.message?.messageContextInfo?.messageSecret ?? content.messageContextInfo?.messageSecret;
      return {
        kind: 'poll',
        question: poll.name,
        options: (poll.options ?? []).map((o) => o.optionName ?? '').filter((o) => o !== ''),
        ...(secret ? { secret: Buffer.from(secret).toString('base64') } : {}),
        creatorJids: msg.key.fromMe ? [] : senderJids(msg),
      };
    }
    case 'pollUpdateMessage': {
      const u = c.pollUpdateMessage;
      const pollWaId = u?.pollCreationMessageKey?.id;
      if (!u?.vote?.encPayload || !u.vote.encIv || !pollWaId) return undefined;
      return {
        kind: 'pollVote',
        pollWaId,
        pollFromMe: u.pollCreationMessageKey?.fromMe === true,
        encPayload: Buffer.from(u.vote.encPayload).toString('base64'),
        encIv: Buffer.from(u.vote.encIv).toString('base64'),
        voterJids: msg.key.fromMe ? [] : senderJids(msg),
      };
    }
    case 'reactionMessage': {
      const r = c.reactionMessage;
      if (!r?.key?.id) return undefined;
      return { kind: 'reaction', targetWaId: r.key.id, emoji: r.text ? r.text : null };
    }
    case 'protocolMessage': {
      const p = c.protocolMessage;
      if (!p?.key?.id) return undefined;
      if (p.type === proto.Message.ProtocolMessage.Type.REVOKE) return { kind: 'revoke', targetWaId: p.key.id };
      if (p.type === proto.Message.ProtocolMessage.Type.MESSAGE_EDIT) {
        const edited = p.editedMessage ? normalizeMessageContent(p.editedMessage) : undefined;
        const text = edited?.conversation ?? edited?.extendedTextMessage?.text ?? captionOf(edited ?? {});
        return text ? { kind: 'edit', targetWaId: p.key.id, text } : undefined;
      }
      return undefined; // history sync notifications, key shares, ephemeral settings…
    }
    case 'buttonsResponseMessage':
      return textOr(c.buttonsResponseMessage?.selectedDisplayText ?? c.buttonsResponseMessage?.selectedButtonId, type);
    case 'listResponseMessage':
      return textOr(c.listResponseMessage?.title ?? c.listResponseMessage?.singleSelectReply?.selectedRowId, type);
    case 'templateButtonReplyMessage':
      return textOr(c.templateButtonReplyMessage?.selectedDisplayText ?? c.templateButtonReplyMessage?.selectedId, type);
    case 'interactiveResponseMessage':
      return textOr(c.interactiveResponseMessage?.body?.text, type);
    default: {
      const caption = captionOf(c);
      return { kind: 'unsupported', waType: type, ...(caption ? { text: caption } : {}) };
    }
  }
}

/** Every JID the sender was addressed by (primary and alternate, PN and LID), device suffixes dropped. */
function senderJids(msg: WAMessage): string[] {
  const k = msg.key;
  const group = k.remoteJid ? isJidGroup(k.remoteJid) : false;
  const raw = group ? [k.participant, k.participantAlt] : [k.remoteJid, k.remoteJidAlt];
  return [...new Set(raw.filter((j): j is string => Boolean(j)).map((j) => jidNormalizedUser(j)))];
}

function textOr(text: string | null | undefined, waType: string): InboundContent {
  return text ? { kind: 'text', text } : { kind: 'unsupported', waType };
}

const MEDIA_KIND = { imageMessage: 'image', videoMessage: 'video', audioMessage: 'audio', documentMessage: 'document', stickerMessage: 'sticker' } as const;

/** The fields Ponte reads from any media node (each proto type has a subset). */
type MediaNode = proto.Message.IImageMessage & proto.Message.IAudioMessage & proto.Message.IDocumentMessage & { viewOnce?: boolean | null };

function mediaOf(msg: WAMessage, content: proto.IMessage, type: keyof typeof MEDIA_KIND): InboundContent | undefined {
  // The union of media node types has no common `ptt`/`viewOnce`; read them through one shape.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
  const m = content[type] as unknown as MediaNode | null | undefined;
  if (!m) return undefined;
  const media = type === 'audioMessage' && m.ptt ? 'voice' : MEDIA_KIND[type];
  const ref = JSON.stringify({ key: msg.key, message: { [type]: m } }, BufferJSON.replacer);
  const size = m.fileLength == null ? undefined : toNumber(m.fileLength);
  const wrapped = msg.message ?? {};
  const viewOnce = Boolean(m.viewOnce || wrapped.viewOnceMessage || wrapped.viewOnceMessageV2 || wrapped.viewOnceMessageV2Extension);
  return {
    kind: 'media',
    media,
    mimetype: m.mimetype ?? 'application/octet-stream',
    ...(m.fileName ? { fileName: m.fileName } : {}),
    ...(m.caption ? { caption: m.caption } : {}),
    ...(size !== undefined ? { sizeBytes: size } : {}),
    ...(viewOnce ? { viewOnce } : {}),
    ref,
  };
}

function phonesOfVcard(vcard: string): string[] {
  const phones: string[] = [];
  for (const line of vcard.split(/\r?\n/)) {
    if (!/^(item\d+\.)?TEL/i.test(line)) continue;
    const waid = /waid=(\d+)/i.exec(line)?.[1];
    const value = line.slice(line.lastIndexOf(':') + 1).trim();
    phones.push(waid ? `+${waid}` : value);
  }
  return phones;
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

/**
 * A call as Ponte relays it: a missed or a rejected call becomes a line in
 * the caller's conversation. Group calls and calls still ringing are not
 * relayed (undefined).
 */
export function normalizeCall(call: WACallEvent, status: 'missed' | 'rejected'): InboundMessage | undefined {
  if (call.isGroup) return undefined;
  const from = jidNormalizedUser(call.from);
  const peer = personOf(from, call.callerPn || undefined, undefined);
  if (!peer) return undefined;
  return {
    waId: `CALL${call.id}`,
    chatId: peer.pnJid ?? peer.lidJid!,
    chatKind: 'direct',
    peer,
    fromMe: false,
    timestampS: Math.floor(call.date.getTime() / 1000),
    upsertType: 'notify',
    content: { kind: 'call', status, video: call.isVideo === true },
  };
}
