/** Builds `messages.upsert` entries exactly as a live rc14 socket delivers them. */
import { randomBytes } from 'node:crypto';
import { type WAMessage, proto } from '@whiskeysockets/baileys';

/** How WhatsApp addressed the sender: by LID (v7's default) or by phone number. */
export type Addressing = 'lid' | 'pn';

export interface SenderOptions {
  /** The sender's phone number, digits only (`5511987654321`). */
  fromPn?: string;
  /** The sender's LID user, digits only (`218512345678901`). */
  fromLid?: string;
  /** Which address is primary (`remoteJid` / `participant`); the other becomes the `…Alt` field. Default: `lid` when a LID is given. */
  addressing?: Addressing;
  pushName?: string;
  /** `key.id`; a WhatsApp-like random id when absent. */
  id?: string;
  /** Written on the owner's phone (or by this socket). */
  fromMe?: boolean;
  /** A group (or `status@broadcast`) chat instead of a direct one; the sender becomes the participant. */
  group?: { jid: string };
  timestampS?: number;
}

export interface TextOptions extends SenderOptions {
  text: string;
  /** `key.id` of the message this one replies to. */
  quotedId?: string;
}

/** A WhatsApp-like message id: `3EB0` + 18 upper-case hex digits. */
export function newWaMessageId(): string {
  return `3EB0${randomBytes(9).toString('hex').toUpperCase()}`;
}

/**
 * Builds a `messages.upsert` entry the way a live rc14 socket delivers it:
 * the protobuf `WebMessageInfo` round-tripped through its wire encoding (so
 * timestamps are `Long`s and unknown fields are gone), then the Baileys-only
 * key fields (`remoteJidAlt`, `participantAlt`, `addressingMode`) attached,
 * as `decodeMessageNode` does.
 */
export function buildMessage(sender: SenderOptions, message: proto.IMessage): WAMessage {
  const addressing: Addressing = sender.addressing ?? (sender.fromLid ? 'lid' : 'pn');
  const pn = sender.fromPn ? `${sender.fromPn}@s.whatsapp.net` : undefined;
  const lid = sender.fromLid ? `${sender.fromLid}@lid` : undefined;
  const primary = addressing === 'lid' ? (lid ?? pn) : (pn ?? lid);
  const alt = primary === lid ? pn : lid;
  if (!primary) throw new TypeError('a sandbox message needs fromPn or fromLid');

  const id = sender.id ?? newWaMessageId();
  const fromMe = sender.fromMe === true;
  const inGroup = sender.group !== undefined;
  const wire = proto.WebMessageInfo.encode({
    key: inGroup ? { remoteJid: sender.group!.jid, fromMe, id, participant: fromMe ? undefined : primary } : { remoteJid: primary, fromMe, id },
    messageTimestamp: sender.timestampS ?? Math.floor(Date.now() / 1000),
    ...(sender.pushName !== undefined ? { pushName: sender.pushName } : {}),
    message,
  }).finish();
  const decoded = proto.WebMessageInfo.decode(wire) as WAMessage;
  const key = decoded.key;
  key.addressingMode = addressing;
  if (inGroup) {
    key.participant ??= '';
    if (!fromMe && alt) key.participantAlt = alt;
  } else {
    // Baileys' cleanMessage leaves '' in 1:1 chats.
    key.participant = '';
    if (alt) key.remoteJidAlt = alt;
  }
  return decoded;
}

/** A text message (`conversation`, or `extendedTextMessage` when it quotes another). */
export function buildTextMessage(o: TextOptions): WAMessage {
  const message: proto.IMessage = o.quotedId
    ? { extendedTextMessage: { text: o.text, contextInfo: { stanzaId: o.quotedId, quotedMessage: { conversation: '' } } } }
    : { conversation: o.text };
  return buildMessage(o, message);
}
