/**
 * The loopback WhatsApp server (test/support/whatsapp-server) driven by a
 * bare, unmodified Baileys rc14 socket: linking by QR and by pairing code,
 * history sync and app-state sync after a link, passkey demands, restoring,
 * inbound and outbound text and images, receipts, retries, stream errors, and
 * a child process pointed at the server (preload and WHATSAPP_WS_URL).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  ALL_WA_PATCH_NAMES,
  type BinaryNode,
  type Contact,
  DisconnectReason,
  downloadMediaMessage,
  jidNormalizedUser,
  makeWASocket,
  proto,
  type UserFacingSocketConfig,
  WA_CERT_DETAILS,
  type WASocket,
} from '@whiskeysockets/baileys';
import { PNG } from 'pngjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  type AccountHistory,
  type ClientConnection,
  consoleLogger,
  MemoryAuthState,
  PasskeyRequiredError,
  preloadEnv,
  preloadNodeArgs,
  quietLibsignal,
  recordingLogger,
  routeWhatsAppMedia,
  silentLogger,
  SocketEvents,
  startWhatsAppServer,
  TEST_ROOT_PUBLIC_KEY,
  trustsTestRoot,
  trustTestMediaCertificate,
  trustTestRoot,
  type WhatsAppServer,
} from '../support/whatsapp-server/index.js';
import { syncsHistory } from '../../src/whatsapp/baileys-socket.js';

// libsignal's `verifySignature` returns the verdict (Baileys' `Curve.verify` drops it, baileys.md §7).
const realCurve = createRequire(import.meta.url)('libsignal/src/curve.js') as {
  verifySignature(publicKey: Buffer, message: Uint8Array, signature: Uint8Array): boolean;
};
const verify = (publicKey: Uint8Array, message: Uint8Array | null | undefined, signature: Uint8Array | null | undefined) =>
  realCurve.verifySignature(Buffer.concat([Buffer.from([5]), publicKey]), message ?? Buffer.alloc(0), signature ?? Buffer.alloc(64));

const WHATSAPP_ROOT = Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY);
const { Status } = proto.WebMessageInfo;
// PONTE_TEST_LOG=1 prints the sockets' Baileys log.
const logger = process.env.PONTE_TEST_LOG === '1' ? consoleLogger('debug') : silentLogger;

let server: WhatsAppServer;
const restore: Array<() => void> = [];
const sockets: Array<{ sock: WASocket; events: SocketEvents }> = [];
let seq = 0;
const nextPhone = () => `5511987${String(100000 + seq++)}`;

beforeAll(async () => {
  restore.push(quietLibsignal(), trustTestRoot(), trustTestMediaCertificate(), routeWhatsAppMedia());
  server = await startWhatsAppServer();
});

afterEach(async () => {
  for (const s of sockets.splice(0)) {
    await s.sock.end(undefined);
    s.events.close();
  }
  expect(server.errors).toEqual([]);
});

afterAll(async () => {
  await server.close();
  for (const r of restore.splice(0).reverse()) r();
});

// The history kinds the production driver processes (src/whatsapp/baileys-socket.ts):
// with RECENT among them, rc14 holds its events after a first login until the
// phone's history comes, which the server sends as WhatsApp does.
const { HistorySyncType } = proto.HistorySync;

function connect(auth: MemoryAuthState, extra: Partial<UserFacingSocketConfig> = {}) {
  const sock = makeWASocket({
    waWebSocketUrl: server.url,
    logger,
    auth: auth.forSocket(),
    markOnlineOnConnect: false,
    syncFullHistory: false,
    shouldSyncHistoryMessage: syncsHistory,
    ...extra,
  });
  sock.ev.on('creds.update', auth.saveCreds);
  const s = { sock, events: new SocketEvents(sock.ev) };
  sockets.push(s);
  return s;
}

/** Opens a socket on saved creds and waits until the server has it online. */
async function login(auth: MemoryAuthState, extra: Partial<UserFacingSocketConfig> = {}) {
  const s = connect(auth, extra);
  // This socket's login, not an earlier one of the same device.
  const online = server.logins.next((c) => c.companion?.pnJid === auth.savedCreds()?.me?.id);
  await s.events.opened();
  return { ...s, conn: await online };
}

/**
 * Links a new account by QR and returns its logged-in, online socket, once
 * rc14 has flushed the events it held until the phone's history came (it
 * counts the sync in `accountSyncCounter` then) and has processed the last
 * chunk, so ending the socket interrupts nothing.
 */
async function linked() {
  const auth = new MemoryAuthState();
  const phone = nextPhone();
  const first = connect(auth);
  const companion = await server.scanQr(await first.events.qr(), { phone });
  await first.events.closed();
  const s = await login(auth);
  await s.events.creds.waitFor((u) => u.accountSyncCounter !== undefined);
  await s.events.history.waitFor((h) => h.syncType === HistorySyncType.RECENT);
  return { ...s, auth, phone, companion, account: companion.account };
}

const textOf = (m: proto.IMessage | null | undefined) => m?.conversation ?? m?.extendedTextMessage?.text;

/** The collections of each app-state sync query a connection sent. */
const appStateQueries = (conn: ClientConnection) =>
  conn.received
    .filter((n) => n.tag === 'iq' && n.attrs.xmlns === 'w:sync:app:state')
    .map((iq) => {
      const sync = Array.isArray(iq.content) ? iq.content.find((c) => c.tag === 'sync') : undefined;
      return (Array.isArray(sync?.content) ? sync.content : []).map((c: BinaryNode) => c.attrs.name);
    });

/**
 * Everything rc14 reported from the phone's history, once the last chunk
 * (RECENT) is in. Its event buffer may merge several chunks' sets into one
 * (keeping the last `syncType`) and, when it does, drops their
 * `lidPnMappings` (Utils/event-buffer.js, `consolidateEvents`); whether it
 * does depends on whether the app-state sync flushed first. So the sets are
 * read as a whole, contacts merged by id as the buffer merges them.
 */
async function historyReport(events: SocketEvents) {
  await events.history.waitFor((h) => h.syncType === HistorySyncType.RECENT);
  const sets = events.history.items;
  const contacts = new Map<string, Contact>();
  for (const c of sets.flatMap((h) => h.contacts)) {
    const defined = Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as Contact;
    contacts.set(c.id, { ...contacts.get(c.id), ...defined });
  }
  return {
    chats: sets.flatMap((h) => h.chats),
    contacts,
    messages: sets.flatMap((h) => h.messages),
    lidPnMappings: sets.flatMap((h) => h.lidPnMappings ?? []),
  };
}

// What rc14 logs when the history notification ends its wait through an app-state sync,
// and when it gives up waiting after 20 s (Socket/chats.js).
const SYNCED_ONLINE = 'App state sync complete, transitioning to Online state and flushing buffer';
const TIMED_OUT_ONLINE = 'Timeout in AwaitingInitialSync, forcing state to Online and flushing buffer';
const AWAITING_HISTORY = 'First connection, awaiting history sync notification with a 20s timeout.';

function png(width: number, height: number): Buffer {
  const img = new PNG({ width, height });
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 37) % 256;
  return PNG.sync.write(img);
}

describe('loopback WhatsApp server', () => {
  it('signs its Noise chain with the test root, which trustTestRoot pins', () => {
    const chain = proto.CertChain.decode(server.certChain);
    const intermediate = proto.CertChain.NoiseCertificate.Details.decode(chain.intermediate?.details ?? Buffer.alloc(0));
    const leaf = proto.CertChain.NoiseCertificate.Details.decode(chain.leaf?.details ?? Buffer.alloc(0));
    expect(verify(TEST_ROOT_PUBLIC_KEY, chain.intermediate?.details, chain.intermediate?.signature)).toBe(true);
    expect(verify(WHATSAPP_ROOT, chain.intermediate?.details, chain.intermediate?.signature)).toBe(false);
    expect(verify(intermediate.key ?? Buffer.alloc(32), chain.leaf?.details, chain.leaf?.signature)).toBe(true);
    expect(intermediate.issuerSerial).toBe(0);
    expect(Buffer.from(leaf.key ?? []).equals(Buffer.from(server.noisePublicKey))).toBe(true);
    expect(trustsTestRoot()).toBe(true);
    const undo = trustTestRoot();
    undo();
    expect(Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY).equals(TEST_ROOT_PUBLIC_KEY)).toBe(true);
  });

  it('links by QR: pair-success, then 515, then a login that uploads pre-keys and opens', async () => {
    const auth = new MemoryAuthState();
    const phone = nextPhone();
    const first = connect(auth);
    const qr = await first.events.qr();
    expect(qr).toMatch(/^https:\/\/wa\.me\/settings\/linked_devices#2@/);
    const companion = await server.scanQr(qr, { phone });
    await first.events.connection.waitFor((u) => u.isNewLogin === true);
    expect(await first.events.closed()).toBe(DisconnectReason.restartRequired);
    expect(auth.savedCreds()?.me).toMatchObject({ id: companion.pnJid, lid: companion.lidJid });

    const second = connect(auth);
    await second.events.opened();
    await second.events.connection.waitFor((u) => u.receivedPendingNotifications === true);
    expect(second.events.qrs()).toEqual([]);
    expect(companion.uploads).toEqual([812]);
    expect(companion.connection?.state).toBe('open');
  });

  it('sends the configured history after a QR link: chats, contacts, LID mappings, messages and push names', async () => {
    const maria = server.addPeer({ phone: nextPhone(), pushName: 'Maria' });
    const joao = server.addPeer({ phone: nextPhone(), pushName: 'João' });
    const now = Math.floor(Date.now() / 1000);
    const history: AccountHistory = {
      contacts: [{ pnJid: maria.pnJid, lidJid: maria.lidJid, name: 'Maria Silva' }, joao],
      messages: [
        { key: { remoteJid: maria.lidJid, fromMe: false, id: 'HIST-1' }, messageTimestamp: now - 120, message: { conversation: 'is the order ready?' } },
        { key: { remoteJid: maria.lidJid, fromMe: true, id: 'HIST-2' }, messageTimestamp: now - 60, message: { conversation: 'yes, tomorrow' } },
      ],
      pushNames: [{ id: maria.lidJid, pushname: 'Maria' }],
    };
    const auth = new MemoryAuthState();
    const phone = nextPhone();
    const first = connect(auth);
    const companion = await server.scanQr(await first.events.qr(), { phone }, { history });
    await first.events.closed();
    const { sock, events } = await login(auth);

    const report = await historyReport(events);
    expect(report.chats).toHaveLength(2);
    expect(report.chats).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: maria.lidJid, pnJid: maria.pnJid, lidJid: maria.lidJid, name: 'Maria Silva' }),
        expect.objectContaining({ id: joao.lidJid, pnJid: joao.pnJid, lidJid: joao.lidJid }),
      ]),
    );
    expect(report.contacts.get(maria.lidJid)).toEqual({ id: maria.lidJid, name: 'Maria Silva', lid: maria.lidJid, phoneNumber: maria.pnJid, notify: 'Maria' });
    expect(report.contacts.get(joao.lidJid)).toEqual({ id: joao.lidJid, lid: joao.lidJid, phoneNumber: joao.pnJid });
    expect(report.messages.map((m) => [m.key.id, m.key.fromMe, textOf(m.message)])).toEqual([
      ['HIST-2', true, 'yes, tomorrow'],
      ['HIST-1', false, 'is the order ready?'],
    ]);
    const mappings = [
      { lid: maria.lidJid, pn: maria.pnJid },
      { lid: joao.lidJid, pn: joao.pnJid },
    ];
    // Reported in the set unless the buffer consolidated it (see historyReport).
    for (const m of report.lidPnMappings) expect(mappings).toContainEqual(m);
    // Stored either way, so rc14 can name a LID-only sender by number.
    for (const { lid, pn } of mappings) expect(jidNormalizedUser((await sock.signalRepository.lidMapping.getPNForLID(lid)) ?? '')).toBe(pn);
    for (const syncType of [HistorySyncType.INITIAL_BOOTSTRAP, HistorySyncType.RECENT]) {
      await events.historyStatus.waitFor((h) => h.syncType === syncType && h.status === 'complete');
    }

    // Three notifications, each acknowledged to the phone (`hist_sync`, after `peer_msg`).
    expect(companion.history.items.map((c) => c.syncType)).toEqual([HistorySyncType.INITIAL_BOOTSTRAP, HistorySyncType.PUSH_NAME, HistorySyncType.RECENT]);
    for (const { id } of companion.history.items) await companion.account.receipts.waitFor((r) => r.type === 'hist_sync' && r.ids.includes(id));
  });

  it("ends rc14's wait for history through the app-state sync, so what came meanwhile is not held for 20 s", async () => {
    const { logger: recorded, entries } = recordingLogger(logger);
    const auth = new MemoryAuthState();
    const phone = nextPhone();
    const first = connect(auth);
    const companion = await server.scanQr(await first.events.qr(), { phone });
    await first.events.closed();
    const { events, conn } = await login(auth, { logger: recorded });
    // Right after login, while rc14 still buffers its events.
    const peer = server.addPeer({ phone: nextPhone() });
    const sent = await peer.sendText(companion.account, 'are you there?');

    const { message, type } = await events.message(sent.id);
    expect(type).toBe('notify');
    expect(message.message?.conversation).toBe('are you there?');
    // Both ways out of the wait count the sync; only the history notification
    // leads to an app-state sync of every collection first, and once the 20 s
    // timer has fired a late notification no longer does (Socket/chats.js).
    await events.creds.waitFor((u) => u.accountSyncCounter === 1);
    expect(appStateQueries(conn)).toEqual([[...ALL_WA_PATCH_NAMES]]);
    await entries.waitFor((e) => e.msg === SYNCED_ONLINE);
    expect(entries.filter((e) => e.msg === TIMED_OUT_ONLINE)).toEqual([]);
    expect(auth.savedCreds()?.accountSyncCounter).toBe(1);
  });

  it('answers app-state sync queries as for an account without app-state data', async () => {
    const { sock, conn } = await linked();
    await sock.resyncAppState(['regular', 'regular_low'], false);
    // One query each: an answer rc14 could not use would make it ask again, for a snapshot.
    expect(appStateQueries(conn)).toEqual([[...ALL_WA_PATCH_NAMES], ['regular', 'regular_low']]);
  });

  it('sends history after a pairing-code link too, only once, and none when the link asks for none', async () => {
    const peer = server.addPeer({ phone: nextPhone(), pushName: 'Ana' });
    const auth = new MemoryAuthState();
    const phone = nextPhone();
    const first = connect(auth);
    await first.events.qr();
    const code = await first.sock.requestPairingCode(phone);
    const companion = await server.enterPairingCode(code, { phone });
    await first.events.closed();
    const second = await login(auth);
    // The default history: every peer on the server, with its push name.
    const report = await historyReport(second.events);
    expect(report.contacts.get(peer.lidJid)).toEqual({ id: peer.lidJid, lid: peer.lidJid, phoneNumber: peer.pnJid, notify: 'Ana' });
    expect(jidNormalizedUser((await second.sock.signalRepository.lidMapping.getPNForLID(peer.lidJid)) ?? '')).toBe(peer.pnJid);
    await second.events.creds.waitFor((u) => u.accountSyncCounter === 1);

    await second.sock.end(undefined);
    const { logger: recorded, entries } = recordingLogger(logger);
    const third = await login(auth, { logger: recorded });
    await entries.waitFor((e) => e.msg?.startsWith('Reconnection with existing sync data') === true);
    expect(companion.history.items).toHaveLength(3);
    expect(appStateQueries(third.conn)).toEqual([]);

    // Without history rc14 waits (and would for 20 s); ending the socket stops its timer.
    const other = new MemoryAuthState();
    const link = connect(other);
    const silent = await server.scanQr(await link.events.qr(), { phone: nextPhone() }, { history: false });
    await link.events.closed();
    const waiting = recordingLogger(logger);
    const s = await login(other, { logger: waiting.logger });
    await waiting.entries.waitFor((e) => e.msg === AWAITING_HISTORY);
    expect(silent.history.items).toEqual([]);
    expect(appStateQueries(s.conn)).toEqual([]);
  });

  it('asks for a passkey instead of linking a scanned QR; rc14 gets the notification and stays unlinked', async () => {
    const phone = nextPhone();
    const auth = new MemoryAuthState();
    const { sock, events } = connect(auth);
    const qr = await events.qr();
    const received = new Promise<BinaryNode>((resolve) => sock.ws.on('CB:notification,type:passkey_prologue_request', resolve));
    const error: unknown = await server.scanQr(qr, { phone }, { passkey: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PasskeyRequiredError);
    const { request } = error as PasskeyRequiredError;
    expect(request).toMatchObject({ phone, via: 'qr', requestOptions: { rpId: 'whatsapp.com', userVerification: 'required' } });

    const notification = await received;
    expect(notification.attrs).toMatchObject({ from: 's.whatsapp.net', id: request.notificationId });
    const options = Array.isArray(notification.content) ? notification.content.find((c) => c.tag === 'passkey_request_options') : undefined;
    expect(JSON.parse(Buffer.from(options?.content as Uint8Array).toString())).toEqual(request.requestOptions);
    expect(sock.authState.creds.me).toBeUndefined();
    expect(server.account(phone)?.companions.size).toBe(0);
    expect(events.connection.filter((u) => u.connection === 'close')).toEqual([]);
  });

  it('asks for a passkey after companion_finish when the number requires one; rc14 acks it and stays unlinked', async () => {
    const phone = nextPhone();
    server.requirePasskey(phone);
    onTestFinished(() => server.requirePasskey(phone, false));
    const auth = new MemoryAuthState();
    const { sock, events } = connect(auth);
    await events.qr();
    const code = await sock.requestPairingCode(phone);
    await expect(server.enterPairingCode(code, { phone })).rejects.toBeInstanceOf(PasskeyRequiredError);
    const request = await server.passkeyRequests.waitFor((r) => r.phone === phone);
    expect(request.via).toBe('pairing-code');
    const ack = await request.connection.acks.waitFor((a) => a.attrs.id === request.notificationId);
    expect(ack.attrs).toMatchObject({ class: 'notification', type: 'passkey_prologue_request' });
    expect(request.connection.pairingCompanion).toBeUndefined();
    expect(server.account(phone)?.companions.size).toBe(0);
    expect(events.connection.filter((u) => u.connection === 'close')).toEqual([]);
  });

  it('restores saved creds without a QR or a new upload, and delivers what came meanwhile as offline', async () => {
    const { auth, sock, events, companion, account } = await linked();
    const peer = server.addPeer({ phone: nextPhone() });
    await sock.end(undefined);
    await events.closed();
    const whileAway = await peer.sendText(account, 'sent while you were away');
    expect(companion.offlineQueue).toHaveLength(1);

    const again = await login(auth);
    expect(again.events.qrs()).toEqual([]);
    expect(again.conn.companion).toBe(companion);
    expect(companion.uploads).toEqual([812]);
    const { message, type } = await again.events.message(whileAway.id);
    expect(type).toBe('append');
    expect(message.message?.conversation).toBe('sent while you were away');
  });

  it('unlinks the device on logout, so its creds then get 401', async () => {
    const { auth, sock, events, companion } = await linked();
    await sock.logout();
    expect(await events.closed()).toBe(DisconnectReason.loggedOut);
    expect(companion.linked).toBe(false);
    expect(await connect(auth).events.closed()).toBe(DisconnectReason.loggedOut);
  });

  it('retires the ADV secret on companion_reg_refresh, which rc14 ignores (Baileys #2737)', async () => {
    const phone = nextPhone();
    const auth = new MemoryAuthState();
    const { sock, events } = connect(auth);
    const qr = await events.qr();
    const refreshed = new Promise<string>((resolve) => {
      // What a bridge has to do itself: a new secret, and the QR shown again with it.
      sock.ws.on('CB:notification,type:companion_reg_refresh', () => {
        const advSecretKey = randomBytes(32).toString('base64');
        sock.authState.creds.advSecretKey = advSecretKey;
        const parts = qr.split(',');
        parts[3] = advSecretKey;
        resolve(parts.join(','));
      });
    });
    server.refreshCompanionRegistration(qr);
    const rotated = await refreshed;
    await expect(server.scanQr(qr, { phone })).rejects.toThrow(/retired/);
    const companion = await server.scanQr(rotated, { phone });
    expect(await events.closed()).toBe(DisconnectReason.restartRequired);
    expect(auth.savedCreds()?.me?.id).toBe(companion.pnJid);
  });

  it('closes with 408 when the QR refs run out', async () => {
    const { events } = connect(new MemoryAuthState(), { qrTimeout: 50 });
    expect(await events.closed()).toBe(DisconnectReason.timedOut);
    expect(events.qrs()).toHaveLength(6);
    expect(new Set(events.qrs()).size).toBe(6);
  });

  it('links by pairing code: the phone confirms the code, then pair-success and 515', async () => {
    const auth = new MemoryAuthState();
    const phone = nextPhone();
    const first = connect(auth);
    await first.events.qr();
    const code = await first.sock.requestPairingCode(phone);
    expect(code).toMatch(/^[A-Z0-9]{8}$/);
    await server.pairingCodeRequests.waitFor((r) => r.phone === phone);
    const companion = await server.enterPairingCode(code, { phone });
    expect(await first.events.closed()).toBe(DisconnectReason.restartRequired);
    expect(auth.savedCreds()).toMatchObject({ registered: true, me: { id: companion.pnJid } });
    const second = await login(auth);
    expect(second.conn.companion).toBe(companion);
  });

  it('refuses a wrong pairing code: the companion key bundle does not open', async () => {
    const phone = nextPhone();
    const { sock, events } = connect(new MemoryAuthState());
    await events.qr();
    const code = await sock.requestPairingCode(phone);
    const wrong = code.startsWith('A') ? `B${code.slice(1)}` : `A${code.slice(1)}`;
    await expect(server.enterPairingCode(wrong, { phone })).rejects.toThrow(/wrong pairing code/);
    expect(server.account(phone)?.companions.size).toBe(0);
  });

  it('delivers inbound text addressed by LID or by phone number, with and without alternates', async () => {
    const { events, account } = await linked();
    const peer = server.addPeer({ phone: nextPhone(), pushName: 'Maria' });

    const byLid = await peer.sendText(account, 'hello by lid');
    const a = await events.message(byLid.id);
    expect(a.type).toBe('notify');
    expect(a.message.key).toMatchObject({ remoteJid: peer.lidJid, remoteJidAlt: peer.pnJid, fromMe: false, addressingMode: 'lid' });
    expect(a.message.pushName).toBe('Maria');
    expect(a.message.message?.conversation).toBe('hello by lid');

    const byPn = await peer.sendText(account, 'hello by pn', { addressing: 'pn', quoted: { id: byLid.id, text: 'hello by lid' } });
    const b = await events.message(byPn.id);
    expect(b.message.key).toMatchObject({ remoteJid: peer.pnJid, remoteJidAlt: peer.lidJid, addressingMode: 'pn' });
    expect(b.message.message?.extendedTextMessage?.text).toBe('hello by pn');
    expect(b.message.message?.extendedTextMessage?.contextInfo).toMatchObject({ stanzaId: byLid.id, quotedMessage: { conversation: 'hello by lid' } });

    const other = server.addPeer({ phone: nextPhone() });
    const bare = await other.sendText(account, 'no alternate', { addressing: 'pn', alternate: false, pushName: 'João' });
    const c = await events.message(bare.id);
    expect(c.message.key.remoteJid).toBe(other.pnJid);
    expect(c.message.key.remoteJidAlt).toBeUndefined();
    expect(c.message.pushName).toBe('João');

    const bareLid = await other.sendText(account, 'lid, no alternate', { alternate: false });
    const d = await events.message(bareLid.id);
    expect(d.message.key.remoteJid).toBe(other.lidJid);
    expect(d.message.key.remoteJidAlt).toBeUndefined();
    expect(textOf(d.message.message)).toBe('lid, no alternate');
  });

  it('delivers an inbound image the client downloads from the media host', async () => {
    const { events, account } = await linked();
    const peer = server.addPeer({ phone: nextPhone() });
    const bytes = png(16, 12);
    const sent = await peer.sendImage(account, bytes, { caption: 'a photo', mimetype: 'image/png' });
    const { message } = await events.message(sent.id);
    expect(message.message?.imageMessage).toMatchObject({ caption: 'a photo', mimetype: 'image/png' });
    const downloaded = await downloadMediaMessage(message, 'buffer', {});
    expect(downloaded.equals(bytes)).toBe(true);
  });

  it('lets the peer decrypt outbound text, to its phone number and to its LID', async () => {
    const { sock, account } = await linked();
    const peer = server.addPeer({ phone: nextPhone() });
    const toPn = await sock.sendMessage(peer.pnJid, { text: 'to your number' });
    const gotPn = await peer.messages.waitFor((m) => m.id === toPn?.key.id);
    expect(textOf(gotPn.message)).toBe('to your number');
    expect(gotPn.to).toBe(peer.pnJid);
    const copy = await account.primaryInbox.waitFor((m) => m.id === toPn?.key.id);
    expect(copy.destinationJid).toBe(peer.pnJid);
    expect(textOf(copy.message)).toBe('to your number');

    const toLid = await sock.sendMessage(peer.lidJid, { text: 'to your lid' });
    const gotLid = await peer.messages.waitFor((m) => m.id === toLid?.key.id);
    expect(textOf(gotLid.message)).toBe('to your lid');
    expect(gotLid.to).toBe(peer.lidJid);

    expect(await sock.onWhatsApp(peer.phone, '5511900000000')).toEqual([{ jid: peer.pnJid, exists: true }]);
  });

  it('lets the peer download and decrypt an outbound image the client uploaded', async () => {
    const { sock } = await linked();
    const peer = server.addPeer({ phone: nextPhone() });
    const bytes = png(20, 20);
    const sent = await sock.sendMessage(peer.pnJid, { image: bytes, caption: 'from the bridge' });
    const got = await peer.messages.waitFor((m) => m.id === sent?.key.id);
    expect(got.message.imageMessage?.caption).toBe('from the bridge');
    expect(got.stanzaType).toBe('media');
    expect((await peer.downloadMedia(got)).equals(bytes)).toBe(true);
    const upload = await server.media.uploads.waitFor((u) => u.url === got.message.imageMessage?.url);
    expect(upload).toMatchObject({ mediaType: 'image', hashMatches: true, overTls: true });
  });

  it('turns delivery and read receipts into messages.update, and sends read receipts to the peer', async () => {
    const { sock, events, account } = await linked();
    const peer = server.addPeer({ phone: nextPhone() });
    const sent = await sock.sendMessage(peer.pnJid, { text: 'did you get it?' });
    const id = sent?.key.id ?? '';
    await peer.messages.waitFor((m) => m.id === id);
    // rc14 holds its own echo (`append`) in the event buffer for ~100 ms and
    // folds a receipt that arrives meanwhile into it instead of emitting
    // messages.update; a phone is never that fast, so wait for the echo.
    expect((await events.message(id)).type).toBe('append');
    peer.sendReceipt(id, 'delivery');
    expect((await events.status(id, Status.DELIVERY_ACK)).key).toMatchObject({ remoteJid: peer.pnJid, fromMe: true });
    peer.sendReceipt(id, 'read');
    await events.status(id, Status.READ);

    const inbound = await peer.sendText(account, 'read me');
    const { message } = await events.message(inbound.id);
    await sock.readMessages([message.key]);
    const receipt = await peer.receipts.waitFor((r) => r.type === 'read' && r.ids.includes(inbound.id));
    expect(receipt.to).toBe(peer.lidJid);
  });

  it('answers a retry receipt by sending the message again, from its cache or from getMessage', async () => {
    const { sock, auth, events } = await linked();
    const peer = server.addPeer({ phone: nextPhone() });
    const sent = await sock.sendMessage(peer.lidJid, { text: 'say again?' });
    const id = sent?.key.id ?? '';
    await peer.messages.waitFor((m) => m.id === id);
    peer.sendRetryReceipt(id, { count: 1 });
    const again = await peer.messages.waitFor((m) => m.id === id && m.copy === 1);
    expect(textOf(again.message)).toBe('say again?');

    // After a restart the in-memory cache is gone; only getMessage can answer.
    await sock.end(undefined);
    await events.closed();
    const stored = sent?.message ?? undefined;
    const asked: string[] = [];
    await login(auth, {
      getMessage: (key) => {
        asked.push(key.id ?? '');
        return Promise.resolve(key.id === id ? stored : undefined);
      },
    });
    peer.sendRetryReceipt(id, { count: 2 });
    const third = await peer.messages.waitFor((m) => m.id === id && m.copy === 2);
    expect(textOf(third.message)).toBe('say again?');
    expect(asked).toContain(id);
  });

  it('closes with the status of each stream error or failure the server sends', async () => {
    const { auth, phone, events, companion } = await linked();
    server.liveConnection(phone).conflict();
    expect(await events.closed()).toBe(DisconnectReason.connectionReplaced);

    let s = await login(auth);
    server.liveConnection(phone).streamError(503);
    expect(await s.events.closed()).toBe(DisconnectReason.unavailableService);

    s = await login(auth);
    server.liveConnection(phone).streamError(515);
    expect(await s.events.closed()).toBe(DisconnectReason.restartRequired);

    s = await login(auth);
    server.liveConnection(phone).failure(401);
    expect(await s.events.closed()).toBe(DisconnectReason.loggedOut);

    // A second socket on the same creds replaces the first, as on WhatsApp.
    s = await login(auth);
    const rival = connect(auth);
    await rival.events.opened();
    expect(await s.events.closed()).toBe(DisconnectReason.connectionReplaced);

    // Once the phone unlinks the device, its logins fail with 401.
    server.unlink(companion);
    expect(await rival.events.closed()).toBe(DisconnectReason.loggedOut);
    expect(await connect(auth).events.closed()).toBe(DisconnectReason.loggedOut);
  });

  it('close() ends every connection and stops every listener', async () => {
    const listeners = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
    const before = listeners();
    const other = await startWhatsAppServer();
    expect(listeners()).toBe(before + 3); // websocket, media over HTTP, media over HTTPS
    const { events } = connect(new MemoryAuthState(), { waWebSocketUrl: other.url });
    await events.qr();
    await Promise.all([other.close(), other.close()]);
    expect(await events.closed()).toBe(DisconnectReason.connectionClosed);
    expect(listeners()).toBe(before);
    expect(other.connections.every((c) => c.state === 'closed')).toBe(true);
  });

  it('points a child process at the server: the preload trusts its root, WHATSAPP_WS_URL names it', async () => {
    const script = `
      import { initAuthCreds, makeWASocket, WA_CERT_DETAILS } from '@whiskeysockets/baileys';
      const logger = { level: 'silent', child: () => logger, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
      const sock = makeWASocket({ logger, waWebSocketUrl: process.env.WHATSAPP_WS_URL, auth: { creds: initAuthCreds(), keys: { get: async () => ({}), set: async () => {} } }, markOnlineOnConnect: false });
      sock.ev.on('connection.update', ({ qr }) => {
        if (!qr) return;
        console.log(JSON.stringify({ qr, root: Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY).toString('hex') }));
        // Not synchronously: rc14 arms the next QR timer after this listener returns.
        setImmediate(() => void sock.end(undefined));
      });`;
    const child = spawn(process.execPath, [...preloadNodeArgs(), '--input-type=module', '-e', script], {
      cwd: process.cwd(),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...preloadEnv(server.url) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill());
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    // Exiting by itself also shows the preload leaves nothing running.
    const code = await new Promise<number | null>((resolve, reject) => child.once('exit', resolve).once('error', reject));
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const { qr, root } = JSON.parse(out.trim()) as { qr: string; root: string };
    expect(root).toBe(TEST_ROOT_PUBLIC_KEY.toString('hex'));
    const ref = qr.split('#')[1]?.split(',')[0];
    expect(server.connections.some((c) => ref !== undefined && c.qrRefs.includes(ref))).toBe(true);
  });
});
