/** The production driver: a Baileys rc14 socket behind the socket interface. */
import { randomBytes } from 'node:crypto';
import { type WAMessage, downloadMediaMessage, jidNormalizedUser, makeCacheableSignalKeyStore, makeWASocket, proto } from '@whiskeysockets/baileys';
import { PasskeyRequiredError, passkeyStepOf, type StanzaLike } from './passkey.js';
import type { SocketFactory, WaSocket } from './socket.js';

/** Puts `advB64` into a QR string (`ref,noiseKey,identityKey,advSecret,platform`). */
export function withAdvSecret(qr: string, advB64: string): string {
  const parts = qr.split(',');
  if (parts.length < 5) return qr;
  parts[3] = advB64;
  return parts.join(',');
}

const SyncType = proto.HistorySync.HistorySyncType;
/**
 * History-sync kinds processed: the ones that carry contacts, push names and
 * the initial LID ⇄ phone-number mappings (rc14 warns that refusing all of
 * them breaks LID handling), whose messages the history import takes in,
 * and ON_DEMAND, the phone's answer to `fetchMessageHistory` (sent only when
 * an operator asks for an import). FULL (sent only with `syncFullHistory`)
 * is not asked for.
 */
const HISTORY_TYPES = new Set<number>([SyncType.INITIAL_BOOTSTRAP, SyncType.RECENT, SyncType.PUSH_NAME, SyncType.NON_BLOCKING_DATA, SyncType.ON_DEMAND]);

/** Baileys' `shouldSyncHistoryMessage`: whether a history-sync notification of this kind is processed. */
export function syncsHistory(msg: { syncType?: number | null }): boolean {
  return HISTORY_TYPES.has(msg.syncType ?? -1);
}

/**
 * The production driver: a Baileys rc14 socket. Options follow
 * `reference/baileys.md` §1.1: the history kinds above, not online on
 * connect, a cached key store over Ponte's auth store, and `getMessage` and a
 * retry counter that outlive the socket, so a retry receipt is answered
 * after a restart too. `WHATSAPP_WS_URL` names the server (a test server in
 * the project's tests; nothing else changes for them).
 *
 * It also carries the bridge-side fix for Baileys #2737 (§1.6): WhatsApp may
 * send `companion_reg_refresh` while a QR is shown and rc14 ignores it, so the
 * QR keeps advertising a retired ADV secret and the phone cannot link. On that
 * notification the secret is rotated in place (the object Baileys reads at
 * pair-success), persisted, and the current QR is emitted again with it.
 *
 * And it stops a link WhatsApp will not complete: a number whose account
 * requires a passkey gets `passkey_prologue_request` (or `crsc_continuation`)
 * while linking, a ceremony rc14 cannot answer (`passkey.ts`). The socket then
 * closes with a {@link PasskeyRequiredError}, no further QR is shown, and the
 * session stops on it.
 */
export const baileysSocketFactory: SocketFactory = (o) => {
  const sock = makeWASocket({
    auth: { creds: o.auth.creds, keys: makeCacheableSignalKeyStore(o.auth.keys, o.logger) },
    logger: o.logger,
    browser: o.browser,
    waWebSocketUrl: o.wsUrl,
    markOnlineOnConnect: false,
    syncFullHistory: false,
    shouldSyncHistoryMessage: syncsHistory,
    getMessage: (key) => o.getMessage(key),
    msgRetryCounterCache: o.retryCounters,
    generateHighQualityLinkPreview: false,
  });
  let lastQr: string | undefined;
  sock.ev.on('connection.update', ({ qr }) => {
    if (qr) lastQr = qr;
  });
  sock.ws.on('CB:notification,type:companion_reg_refresh', () => {
    // A pairing-code login past its second stage derived the secret already.
    if (sock.authState.creds.registered) return;
    const advSecretKey = randomBytes(32).toString('base64');
    sock.authState.creds.advSecretKey = advSecretKey;
    sock.ev.emit('creds.update', { advSecretKey });
    if (lastQr) sock.ev.emit('connection.update', { qr: withAdvSecret(lastQr, advSecretKey) });
  });
  // Only a linking socket (made without a linked number) can be asked; the
  // pairing-code path sets creds.me on this same socket later.
  if (!o.auth.creds.me?.id) watchForPasskey(sock);
  const socket: WaSocket = {
    ev: sock.ev,
    get user() {
      return sock.user;
    },
    sendMessage: (jid, content, options) => sock.sendMessage(jid, content, options),
    end: (error) => sock.end(error),
    logout: (msg) => sock.logout(msg),
    requestPairingCode: (phone) => sock.requestPairingCode(phone),
    fetchMessageHistory: (count, oldestKey, oldestTimestampMs) => sock.fetchMessageHistory(count, oldestKey, oldestTimestampMs),
    downloadMedia: async (msg: WAMessage) => {
      // A stream: the caller cuts it at INBOUND_MEDIA_MAX_BYTES, whatever size the sender declared.
      const download = (m: WAMessage) => downloadMediaMessage(m, 'stream', {}, { logger: o.logger, reuploadRequest: sock.updateMediaMessage });
      try {
        return await download(msg);
      } catch (err) {
        // Baileys #2767 (baileys.md §2.4): expired media (404/410) come back as a
        // Boom whose status is in output.statusCode, so rc14 never re-requests
        // them itself. Ask the phone to upload it again, then retry once.
        const status = (err as { output?: { statusCode?: number } }).output?.statusCode;
        if (status !== 404 && status !== 410) throw err;
        return download(await sock.updateMediaMessage(msg));
      }
    },
    readMessages: (keys) => sock.readMessages(keys),
    groupSubject: async (jid) => (await sock.groupMetadata(jid)).subject || undefined,
    rejectCall: (callId, from) => sock.rejectCall(callId, from),
    sendPresenceUpdate: (type, jid) => sock.sendPresenceUpdate(type, jid),
    // rc14 keeps the LID ⇄ number pairs it learnt (from messages, usync, history) in the auth state.
    pnForLid: async (lid) => {
      const pn = await sock.signalRepository.lidMapping.getPNForLID(lid);
      return pn ? jidNormalizedUser(pn) : undefined;
    },
    onWhatsApp: async (...numbers) => ((await sock.onWhatsApp(...numbers)) ?? []).map((r) => ({ jid: r.jid, exists: Boolean(r.exists) })),
  };
  return socket;
};

/** The frame callbacks a stanza reaches on a Baileys socket's `ws` (`CB:<tag>` for every stanza of that tag). */
interface FrameCallbacks {
  on(event: string, listener: (stanza: StanzaLike) => void): unknown;
}

/** Closes a linking socket with {@link PasskeyRequiredError} on the first passkey step WhatsApp sends it. */
function watchForPasskey(sock: { ws: FrameCallbacks; end(error: Error | undefined): Promise<void> | void }): void {
  let asked = false;
  const onStanza = (stanza: StanzaLike): void => {
    const step = passkeyStepOf(stanza);
    if (!step || asked) return;
    asked = true;
    // rc14's own notification handler runs in this same dispatch and acks once
    // its queue drains; closing on the next turn lets that ack out first.
    // Nothing else is sent: Ponte never answers the ceremony.
    setImmediate(() => void Promise.resolve(sock.end(new PasskeyRequiredError(step))).catch(() => undefined));
  };
  for (const tag of ['notification', 'iq', 'ib']) sock.ws.on(`CB:${tag}`, onStanza);
}
