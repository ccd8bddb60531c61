/**
 * The inbound message model between a WhatsApp session and Chatwoot delivery.
 *
 * A session turns each Baileys `WAMessage` into an {@link InboundMessage}
 * (`whatsapp/normalize.ts`, pure); the instance's inbound queue carries it as
 * JSON; the delivery consumer turns it into Chatwoot calls. Nothing here
 * depends on Baileys or on Chatwoot.
 */

/** A person as WhatsApp addressed them. At least one of `pnJid` / `lidJid` is set. */
export interface WaPerson {
  /** Phone-number JID without device suffix, e.g. `5511987654321@s.whatsapp.net`. */
  pnJid?: string;
  /** LID JID without device suffix, e.g. `123456789012345@lid`. */
  lidJid?: string;
  /** The name the person set on WhatsApp (`pushName`), when known. */
  pushName?: string;
}

export type MediaKind = 'image' | 'video' | 'audio' | 'voice' | 'document' | 'sticker';

/** What the message says, by kind. */
export type InboundContent =
  | { kind: 'text'; text: string; linkTitle?: string }
  | {
      kind: 'media';
      media: MediaKind;
      mimetype: string;
      fileName?: string;
      caption?: string;
      sizeBytes?: number;
      viewOnce?: boolean;
      /**
       * What a download needs (`key` and the media node, BufferJSON): media
       * keys and paths, never the bytes, so large media never sits in Redis.
       */
      ref: string;
    }
  | { kind: 'location'; latitude: number; longitude: number; name?: string; address?: string; live: boolean }
  | { kind: 'contacts'; contacts: Array<{ name: string; phones: string[]; vcard: string }> }
  | {
      kind: 'poll';
      question: string;
      options: string[];
      /** The poll's `messageSecret` (base64): votes are encrypted with it. */
      secret?: string;
      /** The creator's JIDs as WhatsApp may have used them in the vote's HMAC (empty when the owner created it). */
      creatorJids: string[];
    }
  | { kind: 'pollVote'; pollWaId: string; pollFromMe: boolean; encPayload: string; encIv: string; voterJids: string[] }
  | { kind: 'reaction'; targetWaId: string; emoji: string | null }
  | { kind: 'edit'; targetWaId: string; text: string }
  | { kind: 'revoke'; targetWaId: string }
  | { kind: 'call'; status: 'missed' | 'rejected'; video: boolean }
  | { kind: 'unsupported'; waType: string; text?: string };

export interface InboundMessage {
  /** WhatsApp message id (`key.id`); Chatwoot's `source_id` is `WAID:<waId>`. */
  waId: string;
  /**
   * The chat's ordering key: the normalized `remoteJid` of a group, or for a
   * direct chat the peer's canonical JID (phone-number JID when known, else the LID).
   */
  chatId: string;
  chatKind: 'direct' | 'group';
  /** The other party of a direct chat (also for messages sent from the owner's phone). */
  peer: WaPerson;
  /** Who wrote it, in a group: the participant. Absent in direct chats. */
  participant?: WaPerson;
  /** Sent from the owner's phone (Chatwoot: outgoing, `external_echo`). */
  fromMe: boolean;
  /** Seconds since the epoch, from `messageTimestamp`. */
  timestampS: number;
  /** `notify` (live) or `append` (offline backlog, history). */
  upsertType: 'notify' | 'append';
  content: InboundContent;
  /** The quoted message's WhatsApp id, when this is a reply. */
  quotedWaId?: string;
  /** The chat as WhatsApp addressed this message (`key.remoteJid`, device suffix kept), to mark it read later. */
  remoteJid?: string;
}

/** What Ponte keeps of a poll (one relayed from WhatsApp, or one it sent for a bot) to read its votes. */
export interface PollRecord {
  /** The options as the poll shows them: a vote names them by their SHA-256. */
  options: string[];
  /** The poll's `messageSecret` (base64). */
  secret?: string;
  /** The creator's JIDs as WhatsApp may have used them in a vote's HMAC. */
  creatorJids: string[];
}

/** A job of the inbound queue: one event for one chat of one instance. */
export interface InboundEvent {
  instanceKey: string;
  /** Milliseconds since the epoch when the session handed the message over (for latency figures). */
  receivedAtMs: number;
  message: InboundMessage;
}
