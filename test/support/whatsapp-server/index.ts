/**
 * A loopback WhatsApp server for end-to-end tests of an unmodified Baileys
 * 7.0.0-rc14 socket: Noise handshake with a test certificate chain, QR and
 * pairing-code linking, login, the queries rc14 sends, simulated peers with
 * their own Signal state, a media host, receipts, retries and stream errors.
 *
 * In-process: `const server = await startWhatsAppServer()`, then
 * `makeWASocket({ waWebSocketUrl: server.url, … })`; call
 * `trustTestMediaCertificate()` once before the socket uploads media and
 * `routeWhatsAppMedia()` before it downloads history (the phone sends history
 * at the first login after a link; see `history.ts`).
 * Child process: spawn node with `preloadNodeArgs()` and `preloadEnv(server.url)`
 * (`--import tsx --import …/preload.ts`, `WHATSAPP_WS_URL=<server.url>`).
 */
export { type CompanionDevice, type CompanionKeys, deriveLid, LinkedAccount, lidJid, pnJid } from './account.js';
export { Directory, type KnownUser } from './directory.js';
export { type AccountHistory, type HistoryContact, historyChunks, type SentHistoryChunk } from './history.js';
export { Inbox } from './inbox.js';
export { type ClientConnection, type ConnectionState } from './connection.js';
export { decryptMedia, encryptMedia, MediaIntegrityError } from './media-crypto.js';
export { MEDIA_AUTH_TOKEN, MediaHost, type MediaUpload } from './media-host.js';
export { loopbackDirectPath, routeWhatsAppMedia } from './media-route.js';
export { type LinkOptions } from './linking.js';
export { type PasskeyRequest, PasskeyRequiredError, type PasskeyRequestOptions } from './passkey.js';
export { TEST_MEDIA_CERT_PEM, trustTestMediaCertificate } from './media-tls.js';
export { MemoryAuthState, MemoryKeyStore } from './memory-auth-state.js';
export { consoleLogger, type LogEntry, recordingLogger, silentLogger } from './logger.js';
export { quietLibsignal } from './quiet-libsignal.js';
export { type ImageOptions, newMessageId, type PeerNetwork, type QuotedMessage, type ReceiptType, type SendOptions, type SentMessage, SimulatedPeer } from './peer.js';
export { closeStatusCode, type ConnectionUpdate, type HistorySet, type HistoryStatus, SocketEvents, type Upsert } from './socket-events.js';
export { type PreKeyBundle, SignalDevice } from './signal-device.js';
export { type ServerError, startWhatsAppServer, WhatsAppServer, type WhatsAppServerOptions } from './server.js';
export { issueNoiseCertChain, TEST_ROOT_PUBLIC_KEY, trustsTestRoot, trustTestRoot } from './test-root.js';
export type { AccountReceipt, IdentityOptions, ReceivedMessage } from './types.js';
export { PRELOAD_PATH, preloadEnv, preloadNodeArgs, WHATSAPP_URL_ENV } from './child-process.js';
