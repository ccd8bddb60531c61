import { randomBytes } from 'node:crypto';
import { type WAMessage, downloadMediaMessage, makeCacheableSignalKeyStore, makeWASocket } from '@whiskeysockets/baileys';
import type { SocketFactory, WaSocket } from './socket.js';

/** Puts `advB64` into a QR string (`ref,noiseKey,identityKey,advSecret,platform`). */
export function withAdvSecret(qr: string, advB64: string): string {
  const parts = qr.split(',');
  if (parts.length < 5) return qr;
  parts[3] = advB64;
  return parts.join(',');
}

/**
 * The production driver: a Baileys rc14 socket. Options follow
 * `reference/baileys.md` §1.1: no history sync, not online on connect, a
 * cached key store over Ponte's auth store.
 *
 * It also carries the bridge-side fix for Baileys #2737 (§1.6): WhatsApp may
 * send `companion_reg_refresh` while a QR is shown and rc14 ignores it, so the
 * QR keeps advertising a retired ADV secret and the phone cannot link. On that
 * notification the secret is rotated in place (the object Baileys reads at
 * pair-success), persisted, and the current QR is emitted again with it.
 */
export const baileysSocketFactory: SocketFactory = (o) => {
  const sock = makeWASocket({
    auth: { creds: o.auth.creds, keys: makeCacheableSignalKeyStore(o.auth.keys, o.logger) },
    logger: o.logger,
    browser: o.browser,
    markOnlineOnConnect: false,
    syncFullHistory: false,
    shouldSyncHistoryMessage: () => false,
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
  const socket: WaSocket = {
    ev: sock.ev,
    get user() {
      return sock.user;
    },
    sendMessage: (jid, content, options) => sock.sendMessage(jid, content, options),
    end: (error) => sock.end(error),
    logout: (msg) => sock.logout(msg),
    requestPairingCode: (phone) => sock.requestPairingCode(phone),
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
    onWhatsApp: async (...numbers) => ((await sock.onWhatsApp(...numbers)) ?? []).map((r) => ({ jid: r.jid, exists: Boolean(r.exists) })),
  };
  return socket;
};
