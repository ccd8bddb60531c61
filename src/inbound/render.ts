/** Renders each kind of inbound WhatsApp message as Chatwoot message content and attachments. */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { decryptPollVote } from '@whiskeysockets/baileys';
import type { CreateMessageBody, MessageAttachment } from '../chatwoot/types.js';
import { coerceError } from '../lib/errors.js';
import { spoolToFile, TooLargeError } from '../lib/spool.js';
import { WhatsAppUnavailableError } from './relay-errors.js';
import type { InboundContent, InboundMessage, MediaKind, PollRecord } from '../model/inbound.js';
import { authorOf, type RelayedMessage, sameAuthor } from '../model/relayed.js';
import { waSourceId } from '../model/source-id.js';

/** Streams a media message's bytes through the instance's current socket (`ref` as the normalizer stored it). */
export type MediaFetcher = (ref: string) => Promise<Readable>;

/** What one inbound message becomes in Chatwoot. */
export type Rendering =
  | { kind: 'create'; content: string; attributes: Record<string, unknown>; attachment?: MessageAttachment; voice?: boolean }
  | { kind: 'delete'; target: RelayedMessage }
  /** Nothing to do in Chatwoot: a revoke of nothing Ponte relayed, or an act on a message its sender may not touch. */
  | { kind: 'skip'; reason: string };

export type { PollRecord };

export interface RenderDeps {
  fetchMedia?: MediaFetcher;
  polls?: { remember(pollWaId: string, poll: PollRecord): Promise<void>; get(pollWaId: string): Promise<PollRecord | undefined> };
  /** This number's own JIDs (PN and LID), the creator of polls sent from the phone. */
  ownJids?: () => string[];
  maxMediaBytes: number;
  /** Ponte's chat id of the message being rendered (the alias joining a person's phone number and LID). */
  chatId: string;
  /** What Ponte recorded for a WhatsApp id it relayed, when known. */
  relayed(waId: string): Promise<RelayedMessage | undefined>;
}

const EXT: Record<string, string> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'video/mp4': 'mp4',
  'video/3gpp': '3gp',
  'audio/ogg': 'ogg',
  'audio/mpeg': 'mp3',
  'audio/mp4': 'm4a',
  'application/pdf': 'pdf',
};

const LABEL: Record<MediaKind, string> = { image: 'image', video: 'video', audio: 'audio', voice: 'voice message', document: 'document', sticker: 'sticker' };

function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function participantLabel(message: InboundMessage): string {
  const p = message.participant;
  if (!p) return '';
  const number = p.pnJid ? `+${p.pnJid.split('@')[0]}` : undefined;
  const name = p.pushName?.trim();
  if (name && number) return `*${name}* (${number}):`;
  return `*${name ?? number ?? p.lidJid?.split('@')[0] ?? 'unknown'}*:`;
}

/**
 * Renders an inbound WhatsApp message for Chatwoot (issue "every kind of
 * message"): text; media as an attachment with the caption as content (or,
 * when it cannot be fetched or is over the size limit, the caption with a
 * note saying so); locations with a map link; contact cards with their
 * numbers plus the `.vcf`; polls as question and options; reactions and
 * edits as short replies to their message; a revoke as a delete; calls as a
 * line; anything else as an `is_unsupported` placeholder naming its type.
 * Group messages start with the participant's name and number.
 *
 * Message ids are not secrets (every member of a group sees them all), so an
 * act on another message is checked against what Ponte recorded of it: a
 * reaction, a quote or a vote refers only to a message of the same chat; an
 * edit or a revoke also only to one its sender wrote.
 */
export async function renderInbound(message: InboundMessage, deps: RenderDeps): Promise<Rendering> {
  const attributes: Record<string, unknown> = {};
  if (message.fromMe) attributes.external_echo = true;
  const inThisChat = (r: RelayedMessage | undefined): r is RelayedMessage => r !== undefined && r.chatId !== '' && r.chatId === deps.chatId;
  const replyTo = async (waId: string) => {
    const target = await deps.relayed(waId);
    if (inThisChat(target)) attributes.in_reply_to = target.messageId;
    else attributes.in_reply_to_external_id = waSourceId(waId);
  };
  /** For edits and revokes: the target, when this message's sender may act on it; a reason when not. */
  const ownTarget = async (waId: string): Promise<{ target?: RelayedMessage; refused?: string }> => {
    const target = await deps.relayed(waId);
    if (!target) return {};
    if (!inThisChat(target)) return { refused: 'names a message of another chat' };
    if (!sameAuthor(target.author, authorOf(message))) return { refused: 'names a message its sender did not write' };
    return { target };
  };
  if (message.quotedWaId) await replyTo(message.quotedWaId);

  const c: InboundContent = message.content;
  let content: string;
  let attachment: MessageAttachment | undefined;
  let voice = false;
  switch (c.kind) {
    case 'text':
      content = c.linkTitle && !c.text.includes(c.linkTitle) ? `${c.text}\n\n🔗 ${c.linkTitle}` : c.text;
      break;
    case 'media': {
      const label = LABEL[c.media];
      const caption = c.caption ?? '';
      if (c.sizeBytes !== undefined && c.sizeBytes > deps.maxMediaBytes) {
        content = joinLines(caption, `[${label} of ${mb(c.sizeBytes)} not relayed: over the ${mb(deps.maxMediaBytes)} limit]`);
        break;
      }
      try {
        if (!deps.fetchMedia) throw new Error('no WhatsApp connection to download it');
        // Streamed to a temporary file and cut at the cap, whatever size the sender declared.
        const spooled = await spoolToFile(await deps.fetchMedia(c.ref), { maxBytes: deps.maxMediaBytes, prefix: 'ponte-media-' });
        const contentType = c.media === 'voice' ? 'audio/ogg' : c.mimetype.split(';')[0]!.trim();
        const ext = EXT[contentType] ?? contentType.split('/')[1]?.replace(/[^a-z0-9]/gi, '') ?? 'bin';
        attachment = { fileName: c.fileName ?? `${c.media}-${message.waId}.${ext}`, contentType, file: spooled.file, bytes: spooled.bytes };
        voice = c.media === 'voice';
        content = caption;
      } catch (err) {
        // A dropped connection is waited out; a file over the cap or a download WhatsApp refuses is noted.
        if (err instanceof WhatsAppUnavailableError) throw err;
        if (err instanceof TooLargeError) content = joinLines(caption, `[${label} over the ${mb(deps.maxMediaBytes)} limit: not relayed]`);
        else content = joinLines(caption, `[${label} could not be downloaded from WhatsApp: ${coerceError(err).message}]`);
      }
      if (c.viewOnce) content = joinLines(content, '(view once)');
      break;
    }
    case 'location': {
      const title = [c.name, c.address].filter(Boolean).join('\n');
      content = joinLines(c.live ? '📍 Live location' : '📍 Location', title, `https://maps.google.com/?q=${c.latitude},${c.longitude}`);
      break;
    }
    case 'contacts': {
      content = c.contacts.map((x) => `👤 ${x.name}${x.phones.length ? `: ${x.phones.join(', ')}` : ''}`).join('\n');
      const vcf = c.contacts.map((x) => x.vcard.trim()).join('\n');
      const name = c.contacts.length === 1 ? c.contacts[0]!.name.replace(/[^\p{L}\p{N} _-]/gu, '').trim() || 'contact' : 'contacts';
      attachment = { fileName: `${name}.vcf`, contentType: 'text/vcard', data: Buffer.from(`${vcf}\n`) };
      break;
    }
    case 'poll':
      content = joinLines(`📊 ${c.question}`, ...c.options.map((o, i) => `${i + 1}. ${o}`));
      await deps.polls?.remember(message.waId, { options: c.options, ...(c.secret ? { secret: c.secret } : {}), creatorJids: c.creatorJids });
      break;
    case 'pollVote': {
      await replyTo(c.pollWaId);
      const poll = await deps.polls?.get(c.pollWaId);
      const chosen = poll ? readVote(c, poll, c.pollFromMe ? (deps.ownJids?.() ?? []) : poll.creatorJids) : undefined;
      if (chosen === undefined) content = '🗳️ Voted in a poll (the choice could not be read)';
      else content = chosen.length === 0 ? '🗳️ Removed their vote' : `🗳️ Voted: ${chosen.join(', ')}`;
      break;
    }
    case 'reaction': {
      const target = await deps.relayed(c.targetWaId);
      if (target && !inThisChat(target)) return { kind: 'skip', reason: 'a reaction naming a message of another chat' };
      await replyTo(c.targetWaId);
      content = c.emoji ? `Reacted ${c.emoji}` : 'Removed a reaction';
      break;
    }
    case 'edit': {
      const { refused } = await ownTarget(c.targetWaId);
      if (refused) return { kind: 'skip', reason: `an edit that ${refused}` };
      await replyTo(c.targetWaId);
      content = `✏️ Edited: ${c.text}`;
      break;
    }
    case 'revoke': {
      const { target, refused } = await ownTarget(c.targetWaId);
      if (refused) return { kind: 'skip', reason: `a revoke that ${refused}` };
      if (!target) return { kind: 'skip', reason: 'a revoke of a message Ponte did not relay' };
      return { kind: 'delete', target };
    }
    case 'call':
      content = `${c.video ? '📹' : '📞'} ${c.status === 'rejected' ? 'Rejected' : 'Missed'} ${c.video ? 'video' : 'voice'} call`;
      break;
    case 'unsupported':
      attributes.is_unsupported = true;
      content = joinLines(`[WhatsApp message of a type Ponte cannot show: ${c.waType}]`, c.text ?? '');
      break;
  }
  if (message.chatKind === 'group' && message.participant) content = joinLines(participantLabel(message), content);
  return { kind: 'create', content, attributes, ...(attachment ? { attachment } : {}), ...(voice ? { voice } : {}) };
}

/**
 * Decrypts a poll vote (rc14 no longer does: baileys.md §2.6). The JID forms
 * in the vote's HMAC are not fixed (creator LID and voter PN were seen), so
 * every creator/voter pair is tried until AES-GCM authenticates. Returns the
 * chosen option names, or undefined when no pair opens it.
 */
export function readVote(v: Extract<InboundContent, { kind: 'pollVote' }>, poll: PollRecord, creators: string[]): string[] | undefined {
  if (!poll.secret) return undefined;
  const vote = { encPayload: Buffer.from(v.encPayload, 'base64'), encIv: Buffer.from(v.encIv, 'base64') };
  const pollEncKey = Buffer.from(poll.secret, 'base64');
  for (const pollCreatorJid of creators) {
    for (const voterJid of v.voterJids) {
      try {
        const decrypted = decryptPollVote(vote, { pollCreatorJid, pollMsgId: v.pollWaId, pollEncKey, voterJid });
        const hashes = (decrypted.selectedOptions ?? []).map((h) => Buffer.from(h).toString('hex'));
        return poll.options.filter((o) => hashes.includes(createHash('sha256').update(o).digest('hex')));
      } catch (err) {
        // A vote decrypts only with the pair that cast it: a failed authentication means not this pair.
        if (!(err instanceof Error)) throw err;
      }
    }
  }
  return undefined;
}

function joinLines(...parts: string[]): string {
  return parts.filter((p) => p !== '').join('\n');
}

/** The JSON or multipart body of a rendered create. */
export function createBody(r: Extract<Rendering, { kind: 'create' }>, message: InboundMessage): CreateMessageBody {
  return {
    ...(r.content !== '' || !r.attachment ? { content: r.content } : {}),
    message_type: message.fromMe ? 'outgoing' : 'incoming',
    private: false,
    source_id: waSourceId(message.waId),
    content_attributes: r.attributes,
    external_created_at: message.timestampS,
    ...(r.voice ? { is_voice_message: true } : {}),
  };
}
