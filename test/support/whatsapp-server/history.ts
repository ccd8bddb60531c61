/**
 * History sync as the primary phone sends it to a companion it has just
 * linked: each chunk is a zlib-deflated `proto.HistorySync`, encrypted as
 * WhatsApp media (`md-msg-hist`, HKDF info "WhatsApp History Keys") and put on
 * the media host, and announced by a `protocolMessage` of type
 * HISTORY_SYNC_NOTIFICATION that the phone's Signal device encrypts for the
 * companion and sends as a `category="peer"` message from the account's own jid.
 *
 * The chunks, in order:
 * - INITIAL_BOOTSTRAP: the conversations (contacts keyed by LID with `pnJid`
 *   and `lidJid`, plus given conversations and messages) and
 *   `phoneNumberToLidMappings`; rc14 stores the LID ⇄ PN mappings from it;
 * - PUSH_NAME, when there are push names;
 * - RECENT with progress 100, which rc14 reports as the end of the recent sync.
 */
import { promisify } from 'node:util';
import { deflate } from 'node:zlib';
import { proto } from '@whiskeysockets/baileys';
import type { BinaryNode } from '@whiskeysockets/baileys';
import type { CompanionDevice } from './account.js';
import { node, unixSeconds } from './binary-node.js';
import { encryptMedia } from './media-crypto.js';
import type { MediaHost } from './media-host.js';
import { loopbackDirectPath } from './media-route.js';
import { newMessageId } from './peer.js';

const deflateAsync = promisify(deflate);
const SyncType = proto.HistorySync.HistorySyncType;

/** Someone the account has a chat with; a `SimulatedPeer` is one. */
export interface HistoryContact {
  pnJid: string;
  lidJid: string;
  /** The name the account saved for them (the conversation's `name`); none by default. */
  name?: string;
}

/**
 * What the phone sends a new companion. Every field is optional; the server's
 * default (when an account has no `history`) is every peer on the server as a
 * contact, with its push name.
 */
export interface AccountHistory {
  /** Each becomes a conversation keyed by its LID (with `pnJid`, `lidJid`, `name`) and a `phoneNumberToLidMappings` entry. */
  contacts?: HistoryContact[];
  /** Conversations as they are (`id`, `name`, `unreadCount`, …); one with a contact's jid as `id` replaces that contact's. */
  conversations?: proto.IConversation[];
  /** Messages; each goes into the conversation its `key.remoteJid` names (made when missing), newest first. */
  messages?: proto.IWebMessageInfo[];
  /** A PUSH_NAME chunk: jid → push name. */
  pushNames?: Array<{ id: string; pushname: string }>;
}

/** One history-sync notification the phone sent. */
export interface SentHistoryChunk {
  /** The message id of the notification. */
  id: string;
  syncType: proto.HistorySync.HistorySyncType;
  /** Where the encrypted blob is on the media host (plain HTTP). */
  url: string;
  /** The `HistorySync` the blob carries. */
  sync: proto.IHistorySync;
}

const seconds = (t: proto.IWebMessageInfo['messageTimestamp']): number => Number(t ?? 0);

function conversationsOf(history: AccountHistory): proto.IConversation[] {
  const byId = new Map<string, proto.IConversation>();
  for (const c of history.contacts ?? []) {
    byId.set(c.lidJid, { id: c.lidJid, pnJid: c.pnJid, lidJid: c.lidJid, name: c.name });
  }
  for (const c of history.conversations ?? []) {
    if (!c.id) throw new Error('a history conversation needs an id');
    byId.set(c.id, { ...c, messages: [...(c.messages ?? [])] });
  }
  for (const message of history.messages ?? []) {
    const jid = message.key?.remoteJid;
    if (!jid) throw new Error('a history message needs key.remoteJid');
    const conversation = byId.get(jid) ?? { id: jid };
    conversation.messages = [...(conversation.messages ?? []), { message }];
    byId.set(jid, conversation);
  }
  return [...byId.values()].map((c) => {
    // Newest first, as the phone sends them (rc14 takes the first as the chat's last message).
    const messages = [...(c.messages ?? [])].sort((a, b) => seconds(b.message?.messageTimestamp) - seconds(a.message?.messageTimestamp));
    const newest = messages[0]?.message?.messageTimestamp;
    return {
      ...c,
      messages: messages.map((m, i) => ({ ...m, msgOrderId: messages.length - i })),
      conversationTimestamp: c.conversationTimestamp ?? (newest === undefined ? undefined : seconds(newest)),
    };
  });
}

/** The `HistorySync` chunks for an account's history, in sending order. */
export function historyChunks(history: AccountHistory): proto.IHistorySync[] {
  const bootstrap: proto.IHistorySync = {
    syncType: SyncType.INITIAL_BOOTSTRAP,
    chunkOrder: 0,
    conversations: conversationsOf(history),
    phoneNumberToLidMappings: (history.contacts ?? []).map((c) => ({ pnJid: c.pnJid, lidJid: c.lidJid })),
  };
  const pushNames: proto.IHistorySync[] = history.pushNames?.length ? [{ syncType: SyncType.PUSH_NAME, pushnames: history.pushNames }] : [];
  return [bootstrap, ...pushNames, { syncType: SyncType.RECENT, chunkOrder: 1, progress: 100, conversations: [] }];
}

/** Deflates, encrypts and hosts one chunk; returns the notification that points at it and the blob's URL. */
export async function hostHistoryChunk(sync: proto.IHistorySync, media: MediaHost): Promise<{ notification: proto.Message.IHistorySyncNotification; url: string }> {
  const blob = await deflateAsync(proto.HistorySync.encode(sync).finish());
  const enc = await encryptMedia(blob, 'md-msg-hist');
  const url = media.put(enc.file, 'md-msg-hist');
  const notification: proto.Message.IHistorySyncNotification = {
    fileSha256: enc.fileSha256,
    fileLength: enc.fileLength,
    mediaKey: enc.mediaKey,
    fileEncSha256: enc.fileEncSha256,
    // The notification has no `url` field: rc14 downloads from its default media host + directPath (see media-route.ts).
    directPath: loopbackDirectPath(url),
    // Its enum numbers the kinds as proto.HistorySync's does.
    syncType: sync.syncType ?? SyncType.INITIAL_BOOTSTRAP,
    chunkOrder: sync.chunkOrder ?? undefined,
    progress: sync.progress ?? undefined,
  };
  return { notification, url };
}

/**
 * The phone sends its history to a companion: one encrypted peer message per
 * chunk, handed to `deliver` in order, each recorded in `companion.history`.
 */
export async function sendHistory(
  companion: CompanionDevice,
  history: AccountHistory,
  media: MediaHost,
  deliver: (stanza: BinaryNode) => void,
): Promise<void> {
  const { account } = companion;
  // The phone addresses its companions by LID device jid, as peers do.
  const address = companion.lidJid;
  if (!(await account.primary.hasSession(address))) await account.primary.startSession(address, companion.takeBundle());
  for (const sync of historyChunks(history)) {
    const { notification, url } = await hostHistoryChunk(sync, media);
    const message: proto.IMessage = { protocolMessage: { type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION, historySyncNotification: notification } };
    const { type, ciphertext } = await account.primary.encrypt(address, message);
    const id = newMessageId();
    // A peer message (between the account's own devices): from the account's own jid, no recipient.
    deliver(node('message', { from: account.pnJid, id, t: unixSeconds(), type: 'text', category: 'peer' }, [node('enc', { v: '2', type }, ciphertext)]));
    companion.history.push({ id, syncType: sync.syncType ?? SyncType.INITIAL_BOOTSTRAP, url, sync });
  }
}
