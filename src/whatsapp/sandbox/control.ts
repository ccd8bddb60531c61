import { createHash, randomBytes } from 'node:crypto';
import { type WAMessage, aesEncryptGCM, hmacSign, proto } from '@whiskeysockets/baileys';
import { z } from 'zod';
import { AppError } from '../../lib/errors.js';
import { lidOf } from './sandbox-socket.js';
import { buildMessage, newWaMessageId, type SenderOptions } from './message-builder.js';

const MESSAGE_TYPES = ['text', 'image', 'video', 'audio', 'ptt', 'document', 'sticker', 'location', 'contact', 'poll', 'vote', 'reaction', 'edit', 'revoke'] as const;

/** `POST /sandbox/instances/:instance/messages`: a message arriving from WhatsApp. */
export const SandboxMessageSchema = z
  .object({
    from: z.string().regex(/^\+?[\d\s()-]{6,24}$|^\d{5,20}(:\d{1,3})?@(s\.whatsapp\.net|lid)$/, 'must be a phone number with country code or a JID (…@s.whatsapp.net, …@lid)'),
    pushName: z.string().optional(),
    id: z.string().regex(/^[A-Za-z0-9]{1,64}$/, 'must be letters and digits').optional(),
    fromMe: z.boolean().optional(),
    lid: z.union([z.string(), z.boolean()]).optional(),
    group: z.object({ jid: z.string().regex(/@g\.us$/, 'must end with @g.us'), subject: z.string().optional() }).optional(),
    type: z.enum(MESSAGE_TYPES).default('text'),
    text: z.string().optional(),
    caption: z.string().optional(),
    media: z.string().optional(),
    mimetype: z.string().optional(),
    fileName: z.string().optional(),
    quotedId: z.string().optional(),
    targetId: z.string().optional(),
    emoji: z.string().optional(),
    latitude: z.number().min(-90).max(90).optional(),
    longitude: z.number().min(-180).max(180).optional(),
    vcard: z.string().optional(),
    options: z.array(z.string()).max(12).optional(),
  })
  .superRefine((b, ctx) => {
    const need = (field: keyof typeof b, why: string) => {
      if (b[field] === undefined || b[field] === '') ctx.addIssue({ code: 'custom', path: [field], message: why });
    };
    switch (b.type) {
      case 'text':
        need('text', `is required for type ${b.type}`);
        break;
      case 'image':
      case 'video':
      case 'audio':
      case 'ptt':
      case 'document':
      case 'sticker':
        need('media', `is required for type ${b.type} (base64)`);
        if (b.media !== undefined && !/^[A-Za-z0-9+/=\s]*$/.test(b.media)) ctx.addIssue({ code: 'custom', path: ['media'], message: 'must be base64' });
        break;
      case 'location':
        need('latitude', 'is required for type location');
        need('longitude', 'is required for type location');
        break;
      case 'contact':
        need('vcard', 'is required for type contact');
        break;
      case 'poll':
        need('text', 'is required for type poll (the question)');
        if ((b.options?.length ?? 0) < 2) ctx.addIssue({ code: 'custom', path: ['options'], message: 'needs at least 2 options for type poll' });
        break;
      case 'vote':
        need('targetId', 'is required for type vote (the poll id)');
        if (b.options === undefined) ctx.addIssue({ code: 'custom', path: ['options'], message: 'is required for type vote (the chosen options, [] removes the vote)' });
        break;
      case 'reaction':
        need('targetId', 'is required for type reaction');
        if (b.emoji === undefined) ctx.addIssue({ code: 'custom', path: ['emoji'], message: 'is required for type reaction ("" removes it)' });
        break;
      case 'edit':
        need('targetId', 'is required for type edit');
        need('text', 'is required for type edit');
        break;
      case 'revoke':
        need('targetId', 'is required for type revoke');
        break;
    }
  });

export type SandboxMessageBody = z.infer<typeof SandboxMessageSchema>;

const DEFAULT_MIME: Record<string, string> = {
  image: 'image/jpeg',
  video: 'video/mp4',
  audio: 'audio/mpeg',
  ptt: 'audio/ogg; codecs=opus',
  document: 'application/octet-stream',
  sticker: 'image/webp',
};

/** Media the sandbox "hosts": what a download of the message would return. */
export interface SandboxMedia {
  sha256: string;
  data: Buffer;
}

/** A poll the sandbox delivered: what its voters encrypt their votes with. */
export interface SandboxPoll {
  secret: Buffer;
  creatorJid: string;
}

/** Encrypts a vote as WhatsApp does (the inverse of Baileys' decryptPollVote). */
function encryptVote(options: string[], poll: SandboxPoll, pollMsgId: string, voterJid: string): { encPayload: Buffer; encIv: Buffer } {
  const sign = Buffer.concat([Buffer.from(pollMsgId), Buffer.from(poll.creatorJid), Buffer.from(voterJid), Buffer.from('Poll Vote'), Buffer.from([1])]);
  const key0 = hmacSign(poll.secret, new Uint8Array(32), 'sha256');
  const encKey = hmacSign(sign, key0, 'sha256');
  const encIv = randomBytes(12);
  const plain = proto.Message.PollVoteMessage.encode({ selectedOptions: options.map((o) => createHash('sha256').update(o).digest()) }).finish();
  return { encPayload: aesEncryptGCM(plain, encKey, encIv, Buffer.from(`${pollMsgId}\u0000${voterJid}`)), encIv };
}

/** Builds the `proto.WebMessageInfo` a live socket would deliver for a control call. */
export function buildSandboxMessage(b: SandboxMessageBody, polls: ReadonlyMap<string, SandboxPoll> = new Map()): { message: WAMessage; media?: SandboxMedia; poll?: SandboxPoll & { id: string } } {
  const digits = b.from.split('@')[0]!.split(':')[0]!.replace(/\D/g, '');
  const isLidJid = b.from.endsWith('@lid');
  const sender: SenderOptions = {
    id: b.id ?? newWaMessageId(),
    ...(b.fromMe ? { fromMe: true } : {}),
    ...(b.pushName !== undefined ? { pushName: b.pushName } : {}),
    ...(b.group ? { group: { jid: b.group.jid } } : {}),
  };
  if (isLidJid) sender.fromLid = digits;
  else {
    sender.fromPn = digits;
    // `lid: true` addresses the sender by a LID with the number as the alternate (v7's usual shape).
    if (b.lid === true) sender.fromLid = lidOf(digits);
    else if (typeof b.lid === 'string') sender.fromLid = b.lid.replace(/@lid$/, '');
    if (sender.fromLid) sender.addressing = 'lid';
  }
  const context = b.quotedId ? { contextInfo: { stanzaId: b.quotedId, quotedMessage: { conversation: '' } } } : {};
  const targetKey = (id: string) => ({ id, remoteJid: b.group?.jid ?? (isLidJid ? b.from : `${digits}@s.whatsapp.net`), fromMe: false });

  switch (b.type) {
    case 'text':
      return { message: buildMessage(sender, b.quotedId ? { extendedTextMessage: { text: b.text!, ...context } } : { conversation: b.text! }) };
    case 'location':
      return { message: buildMessage(sender, { locationMessage: { degreesLatitude: b.latitude!, degreesLongitude: b.longitude!, ...(b.text ? { name: b.text } : {}), ...context } }) };
    case 'contact':
      return { message: buildMessage(sender, { contactMessage: { displayName: /FN:(.+)/.exec(b.vcard!)?.[1]?.trim() ?? 'Contato', vcard: b.vcard!, ...context } }) };
    case 'poll': {
      const secret = randomBytes(32);
      const message = buildMessage(sender, {
        pollCreationMessageV3: { name: b.text!, options: b.options!.map((optionName) => ({ optionName })), selectableOptionsCount: 1 },
        messageContextInfo: { messageSecret: secret },
      });
      // WhatsApp signs votes with the creator's LID when it has one (baileys.md §2.6).
      const creatorJid = sender.fromLid ? `${sender.fromLid}@lid` : `${digits}@s.whatsapp.net`;
      return { message, poll: { id: message.key.id!, secret, creatorJid } };
    }
    case 'vote': {
      const poll = polls.get(b.targetId!);
      if (!poll) throw new UnknownPollError(`no sandbox poll ${b.targetId!}`);
      const vote = encryptVote(b.options!, poll, b.targetId!, `${digits}@s.whatsapp.net`);
      return { message: buildMessage(sender, { pollUpdateMessage: { pollCreationMessageKey: targetKey(b.targetId!), vote, senderTimestampMs: Date.now() } }) };
    }
    case 'reaction':
      return { message: buildMessage(sender, { reactionMessage: { key: targetKey(b.targetId!), text: b.emoji!, senderTimestampMs: Date.now() } }) };
    case 'edit':
      return {
        message: buildMessage(sender, {
          protocolMessage: { type: proto.Message.ProtocolMessage.Type.MESSAGE_EDIT, key: targetKey(b.targetId!), editedMessage: { conversation: b.text! }, timestampMs: Date.now() },
        }),
      };
    case 'revoke':
      return { message: buildMessage(sender, { protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE, key: targetKey(b.targetId!) } }) };
    default: {
      const data = Buffer.from(b.media!, 'base64');
      const sha = createHash('sha256').update(data).digest();
      const mimetype = b.mimetype ?? DEFAULT_MIME[b.type]!;
      const common = {
        mimetype,
        url: `https://sandbox.invalid/m/${sha.toString('hex')}`,
        directPath: `/m/${sha.toString('hex')}`,
        mediaKey: randomBytes(32),
        fileSha256: sha,
        fileEncSha256: sha,
        fileLength: data.length,
        ...context,
      };
      const content: proto.IMessage =
        b.type === 'image'
          ? { imageMessage: { ...common, ...(b.caption ? { caption: b.caption } : {}) } }
          : b.type === 'video'
            ? { videoMessage: { ...common, ...(b.caption ? { caption: b.caption } : {}) } }
            : b.type === 'audio' || b.type === 'ptt'
              ? { audioMessage: { ...common, ptt: b.type === 'ptt' } }
              : b.type === 'sticker'
                ? { stickerMessage: common }
                : { documentMessage: { ...common, fileName: b.fileName ?? 'file', ...(b.caption ? { caption: b.caption } : {}) } };
      return { message: buildMessage(sender, content), media: { sha256: sha.toString('hex'), data } };
    }
  }
}

export class UnknownPollError extends AppError {
  readonly code = 'UNKNOWN_POLL';
}

/** The first problem of a refused body, naming the field: `text: is required for type text`. */
export function describeZodError(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
}
