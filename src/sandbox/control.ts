/** Builds the WhatsApp messages the sandbox's simulated senders send, from control API requests. */
import { createHash, randomBytes } from 'node:crypto';
import { type WAMessage, aesEncryptGCM, hmacSign, proto } from '@whiskeysockets/baileys';
import { AppError } from '../lib/errors.js';
import { lidOf } from './sandbox-socket.js';
import type { SandboxMessageBody } from './schemas.js';
import { buildMessage, newWaMessageId, type SenderOptions } from './message-builder.js';


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

/** Builds the `proto.WebMessageInfo` a live socket would deliver for a control call (written at `timestampS`: now by default). */
export function buildSandboxMessage(
  b: SandboxMessageBody,
  polls: ReadonlyMap<string, SandboxPoll> = new Map(),
  timestampS?: number,
): { message: WAMessage; media?: SandboxMedia; poll?: SandboxPoll & { id: string } } {
  const digits = b.from.split('@')[0]!.split(':')[0]!.replace(/\D/g, '');
  const isLidJid = b.from.endsWith('@lid');
  const sender: SenderOptions = {
    id: b.id ?? newWaMessageId(),
    ...(b.fromMe ? { fromMe: true } : {}),
    ...(b.pushName !== undefined ? { pushName: b.pushName } : {}),
    ...(b.group ? { group: { jid: b.group.jid } } : {}),
    ...(timestampS !== undefined ? { timestampS } : {}),
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
