/**
 * The whole daemon on its production WhatsApp driver (Baileys rc14) against
 * the loopback WhatsApp server and the Chatwoot double, driven only through
 * the daemon's HTTP surface and the simulated phones: linking by QR and by
 * pairing code, inbound text, replies, images and LID senders, agent replies
 * the customer's phone decrypts with their ticks, a retry receipt answered
 * after a restart, restoring without a QR, and the disconnects WhatsApp sends
 * (401, 440, 515).
 *
 * One server, one double and one daemon (restarted once on the same session
 * folder and Redis prefix) serve the whole file; the tests run in order and
 * build on each other's instances.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble, type CwContactRecord, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { api, type Daemon, instanceStatus, stopDaemon, until } from '../support/daemon.js';
import { SECRET, tearDown, tempDir, VERBOSE } from '../support/e2e.js';
import { linkByPairingCode, linkByQr, loginsOf, realDriverEnv, startRealDriverDaemon, textOf } from '../support/real-whatsapp.js';
import { randomPrefix } from '../support/redis.js';
import { type CompanionDevice, quietLibsignal, type SimulatedPeer, startWhatsAppServer, type WhatsAppServer } from '../support/whatsapp-server/index.js';

const INBOX_SECRET = 'real-driver-inbox-signing-secret';
const PHONE_QR = '5511933330001';
const PHONE_CODE = '5511933330002';
/** The daemon's first reconnect delay (`BAILEYS_RECONNECT_DELAY_MS`): a transient close reconnects within about this long. */
const RECONNECT_DELAY_MS = 250;
/** How long, many reconnect delays, the server must see no new login after a 440. */
const QUIET_AFTER_HALT_MS = 2000;

interface GlobalStatusInstance {
  instance: string;
  state: string;
  phone: string | null;
  qrAttempts: number;
  lastError: string | null;
  counters: { sent: number };
}

const RANK = { failed: 0, sent: 1, delivered: 2, read: 3 } as const;

/** The daemon's JSON log lines in these output chunks (a line cut at the first chunk's start is skipped). */
function logEntries(chunks: readonly string[]): Array<Record<string, unknown>> {
  const entries: Array<Record<string, unknown>> = [];
  for (const line of chunks.join('').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      entries.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // Not a whole log line.
    }
  }
  return entries;
}

function png(width: number, height: number): Buffer {
  const img = new PNG({ width, height });
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 53) % 256;
  return PNG.sync.write(img);
}

describe('the daemon on the Baileys driver, against a loopback WhatsApp', () => {
  let server: WhatsAppServer;
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  let env: Record<string, string>;
  const prefix = randomPrefix();
  let accountId: number;
  /** The instance linked by QR, and the one linked by pairing code. */
  let qrKey: string;
  let codeKey: string;
  let qrCompanion: CompanionDevice;
  let codeCompanion: CompanionDevice;
  /** The operator's conversation (another inbox) that gets each instance's alerts. */
  let notifyConversation: number;
  const daemons: Daemon[] = [];
  const peers: Record<string, SimulatedPeer> = {};

  let loudLibsignal: (() => void) | undefined;

  beforeAll(async () => {
    // The simulated phones' libsignal prints whole session records on every change.
    loudLibsignal = quietLibsignal();
    server = await startWhatsAppServer();
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    sessions = await tempDir('ponte-e2e-real-');
    env = realDriverEnv(
      { double, sessions, prefix },
      {
        BAILEYS_RECONNECT_DELAY_MS: String(RECONNECT_DELAY_MS),
        SHUTDOWN_TIMEOUT_MS: '15000',
        // `info` at least: the restore check reads the session-state lines.
        SERVER_LOG_LEVEL: VERBOSE ? 'debug' : 'info',
      },
    );
    daemon = await startRealDriverDaemon(server, env);
    daemons.push(daemon);

    const inboxFor = (name: string) => {
      const id = double.addInbox({ accountId, name, secret: INBOX_SECRET }).id;
      double.setInboxWebhook(id, `${daemon.base}/webhook/chatwoot/${accountId}-${id}?token=${SECRET}`);
      return `${accountId}-${id}`;
    };
    qrKey = inboxFor('WhatsApp Vendas');
    codeKey = inboxFor('WhatsApp Suporte');
    notifyConversation = await operatorConversation();
  }, 90_000);

  afterAll(async () => {
    await tearDown({ daemons, close: [server, double], prefix, dir: sessions });
    loudLibsignal?.();
  }, 90_000);

  afterEach(() => {
    // Neither side saw anything it would refuse: no protocol error on WhatsApp's, no contract violation on Chatwoot's.
    expect(server.errors).toEqual([]);
    expect(double.violations).toEqual([]);
  });

  /** A conversation in an inbox Ponte does not serve, where an operator reads the alerts. */
  async function operatorConversation(): Promise<number> {
    const opsInbox = double.addInbox({ accountId, name: 'Operações' }).id;
    const call = async (path: string, body: unknown): Promise<unknown> => {
      const res = await fetch(`${double.url}/api/v1/accounts/${accountId}${path}`, {
        method: 'POST',
        headers: { api_access_token: double.token, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      return res.json();
    };
    const created = (await call('/contacts', { inbox_id: opsInbox, name: 'Operador' })) as { payload: { contact: { id: number }; contact_inbox: { source_id: string } } };
    const conv = (await call('/conversations', { source_id: created.payload.contact_inbox.source_id, inbox_id: opsInbox, contact_id: created.payload.contact.id })) as { id: number };
    return conv.id;
  }

  const status = async (key: string): Promise<GlobalStatusInstance | undefined> => {
    const { json } = await api(daemon, 'GET', '/global-status');
    return (json.instances as GlobalStatusInstance[]).find((i) => i.instance === key);
  };
  const stateIs = (key: string, state: string) => until(`${key} ${state}`, async () => (await instanceStatus(daemon, key))?.state === state, daemon);
  const allMessages = (): CwMessageRecord[] => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id));
  const relayed = (waId: string) => until(`WhatsApp message ${waId} in Chatwoot`, () => Promise.resolve(allMessages().find((m) => m.source_id === `WAID:${waId}`)), daemon);
  const contactOf = (m: CwMessageRecord): CwContactRecord | undefined => {
    const conv = double.conversations(accountId).find((c) => c.id === m.conversation_id);
    return double.contacts(accountId).find((c) => c.id === conv?.contact_id);
  };
  const alerts = () => double.messages(accountId, notifyConversation).map((m) => m.content ?? '');
  const peer = (name: string, phone: string) => (peers[name] ??= server.addPeer({ phone, pushName: name }));
  const accountOf = (phone: string) => {
    const a = server.account(phone);
    if (!a) throw new Error(`no account ${phone} on the server`);
    return a;
  };

  it('links one number by QR and another by pairing code; both are open in /global-status with their numbers', async () => {
    const notify = { account: accountId, conversation: notifyConversation };
    const created = await api(daemon, 'POST', '/admin/instances', { inbox: Number(qrKey.split('-')[1]), account: accountId, notify });
    expect(created).toMatchObject({ status: 201, json: { instance: qrKey } });
    await stateIs(qrKey, 'awaiting_scan');
    qrCompanion = await linkByQr(daemon, server, qrKey, PHONE_QR);
    await until('the QR instance open', async () => (await status(qrKey))?.state === 'open', daemon);
    expect(await status(qrKey)).toMatchObject({ state: 'open', phone: PHONE_QR });

    expect((await api(daemon, 'POST', '/admin/instances', { inbox: Number(codeKey.split('-')[1]), account: accountId, notify })).status).toBe(201);
    await stateIs(codeKey, 'awaiting_scan');
    const linked = await linkByPairingCode(daemon, server, codeKey, PHONE_CODE);
    expect(linked.code).toMatch(/^[A-Z0-9]{8}$/);
    codeCompanion = linked.companion;
    await until('the pairing-code instance open', async () => (await status(codeKey))?.state === 'open', daemon);
    expect(await status(codeKey)).toMatchObject({ state: 'open', phone: PHONE_CODE });

    // Both logged in on the server, and the operator was told in the notify conversation.
    for (const c of [qrCompanion, codeCompanion]) expect(c.connection?.state).toBe('open');
    await until('both links announced', () => Promise.resolve(alerts().filter((t) => t.startsWith('✅ Linked')).length === 2 || undefined));
  }, 90_000);

  it('relays inbound text, a reply quoting it, and an image with its exact bytes', async () => {
    const maria = peer('Maria', '5511987650001');
    const account = accountOf(PHONE_QR);
    const hello = await maria.sendText(account, 'Oi, o pedido 123 já saiu?');
    const first = await relayed(hello.id);
    expect(first).toMatchObject({ content: 'Oi, o pedido 123 já saiu?', message_type: 'incoming' });
    expect(contactOf(first)).toMatchObject({ phone_number: `+${maria.phone}`, name: 'Maria' });

    const reply = await maria.sendText(account, 'Sobre isso: é urgente', { quoted: { id: hello.id, text: 'Oi, o pedido 123 já saiu?' } });
    const second = await relayed(reply.id);
    expect(second.content).toBe('Sobre isso: é urgente');
    expect(second.conversation_id).toBe(first.conversation_id);
    expect(second.content_attributes.in_reply_to).toBe(first.id);

    const bytes = png(24, 16);
    const image = await maria.sendImage(account, bytes, { caption: 'a etiqueta', mimetype: 'image/png', width: 24, height: 16 });
    const third = await relayed(image.id);
    expect(third.content).toBe('a etiqueta');
    expect(third.attachments).toHaveLength(1);
    expect(third.attachments[0]?.file_type).toBe('image');
    expect(third.attachments[0]?.data.equals(bytes)).toBe(true);
  }, 90_000);

  it('names a LID sender by number when WhatsApp gives sender_pn, and by LID alone when it does not', async () => {
    const account = accountOf(PHONE_QR);
    const withPn = peer('Joana', '5511987650002');
    const a = await relayed((await withPn.sendText(account, 'por LID, com número')).id);
    expect(contactOf(a)).toMatchObject({ phone_number: `+${withPn.phone}`, name: 'Joana' });

    const lidOnly = peer('Lia', '5511987650003');
    const b = await relayed((await lidOnly.sendText(account, 'por LID, sem número', { alternate: false })).id);
    const contact = contactOf(b);
    // WhatsApp gave no number, and this account never learnt one: the contact carries the LID, not a guess.
    expect(contact?.phone_number ?? null).toBeNull();
    expect(contact?.identifier).toBe(lidOnly.lidJid);
    expect(b.content).toBe('por LID, sem número');

    // Later WhatsApp gives her number (a PN-addressed message with sender_lid): the same contact gains it.
    const c = await relayed((await lidOnly.sendText(account, 'agora pelo número', { addressing: 'pn' })).id);
    expect(c.conversation_id).toBe(b.conversation_id);
    expect(contactOf(c)).toMatchObject({ id: contact?.id, phone_number: `+${lidOnly.phone}` });
  }, 90_000);

  it('keeps one contact and one conversation for a person who moves from phone-number to LID addressing', async () => {
    const account = accountOf(PHONE_QR);
    const paulo = peer('Paulo', '5511987650004');
    const byPn = await relayed((await paulo.sendText(account, 'pelo número', { addressing: 'pn', alternate: false })).id);
    const byLid = await relayed((await paulo.sendText(account, 'agora pelo LID')).id);
    expect(byLid.conversation_id).toBe(byPn.conversation_id);
    const mine = double.contacts(accountId).filter((c) => c.phone_number === `+${paulo.phone}` || c.identifier === paulo.lidJid || c.identifier === paulo.pnJid);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ phone_number: `+${paulo.phone}` });
    expect(double.conversations(accountId).filter((c) => c.contact_id === mine[0]?.id)).toHaveLength(1);
  }, 90_000);

  // The message above showed Ponte this LID with the number (sender_pn): the chat cache records both
  // addresses, and rc14's mapping answers for the LID, so a message by LID alone finds the same person.
  it('keeps that one contact and conversation when the person then writes by LID alone', async () => {
    const account = accountOf(PHONE_QR);
    const paulo = peers.Paulo!;
    const earlier = allMessages().find((m) => m.content === 'agora pelo LID')!;
    const bare = await relayed((await paulo.sendText(account, 'só pelo LID', { alternate: false })).id);
    expect(double.contacts(accountId).filter((c) => c.name === 'Paulo')).toHaveLength(1);
    expect(bare.conversation_id).toBe(earlier.conversation_id);
  }, 90_000);

  it("sends an agent reply the customer's phone decrypts, then reports delivered and read, never backwards", async () => {
    const maria = peers.Maria!;
    const conv = allMessages().find((m) => m.content === 'Oi, o pedido 123 já saiu?')!.conversation_id;
    const lastInbound = allMessages().filter((m) => m.conversation_id === conv && m.message_type === 'incoming').at(-1)!;
    const agent = double.createAgentMessage(accountId, conv, { content: 'Saiu hoje cedo, chega amanhã.' });
    const got = await until('the reply on the phone', () => Promise.resolve(maria.messages.items.find((m) => textOf(m.message) === 'Saiu hoje cedo, chega amanhã.')), daemon);
    expect(got.copy).toBe(0);
    // The agent answered: the customer's last message gets its blue ticks.
    const lastWaId = String(lastInbound.source_id).replace(/^WAID:/, '');
    await until('the read receipt on the phone', () => Promise.resolve(maria.receipts.items.some((r) => r.type === 'read' && r.ids.includes(lastWaId))), daemon);

    const record = () => double.messages(accountId, conv).find((m) => m.id === agent.id);
    maria.sendReceipt(got.id, 'delivery');
    await until('delivered', () => Promise.resolve(record()?.status === 'delivered'), daemon);
    maria.sendReceipt(got.id, 'read');
    await until('read', () => Promise.resolve(record()?.status === 'read'), daemon);
    const history = record()!.statusHistory;
    expect(history.map((s) => RANK[s])).toEqual([...history.map((s) => RANK[s])].sort((x, y) => x - y));
    expect(history).toEqual(['sent', 'delivered', 'read']);
  }, 90_000);

  /** What the restart below saw, for the restore test after it. */
  let restart: { registrationsBefore: number; output: string[] } | undefined;

  it('answers a retry receipt after a restart from what Ponte stored (getMessage), and the phone decrypts it', async () => {
    const maria = peers.Maria!;
    const conv = allMessages().find((m) => m.content === 'Oi, o pedido 123 já saiu?')!.conversation_id;
    const sentBefore = (await status(qrKey))?.counters.sent ?? 0;
    double.createAgentMessage(accountId, conv, { content: 'Segue o código de rastreio: BR123' });
    const got = await until('the reply on the phone', () => Promise.resolve(maria.messages.items.find((m) => textOf(m.message) === 'Segue o código de rastreio: BR123')), daemon);
    // Ponte has finished with the send (and kept what it sent) before it is stopped.
    await until('the send counted', async () => ((await status(qrKey))?.counters.sent ?? 0) > sentBefore, daemon);

    const registrationsBefore = server.connections.filter((c) => c.isRegistration).length;
    const loginsBefore = { qr: loginsOf(server, PHONE_QR).length, code: loginsOf(server, PHONE_CODE).length };
    expect(await stopDaemon(daemon)).toBe(0);
    daemon = await startRealDriverDaemon(server, env, { port: daemon.port });
    daemons.push(daemon);
    restart = { registrationsBefore, output: daemon.output };
    await until('the QR instance open again', async () => (await status(qrKey))?.state === 'open', daemon);
    await until('the pairing-code instance open again', async () => (await status(codeKey))?.state === 'open', daemon);
    expect(loginsOf(server, PHONE_QR).length).toBeGreaterThan(loginsBefore.qr);
    expect(loginsOf(server, PHONE_CODE).length).toBeGreaterThan(loginsBefore.code);

    // The phone could not decrypt it: rc14's own cache died with the old process.
    maria.sendRetryReceipt(got.id, { count: 1 });
    const again = await until('the re-sent message', () => Promise.resolve(maria.messages.items.find((m) => m.id === got.id && m.copy === 1)), daemon);
    expect(textOf(again.message)).toBe('Segue o código de rastreio: BR123');
  }, 90_000);

  it('restores both numbers after the restart without showing a QR', async () => {
    if (!restart) throw new Error('the restart of the previous test did not happen');
    for (const key of [qrKey, codeKey]) {
      const s = await status(key);
      expect(s).toMatchObject({ state: 'open', qrAttempts: 0 });
    }
    expect((await status(qrKey))?.phone).toBe(PHONE_QR);
    expect((await status(codeKey))?.phone).toBe(PHONE_CODE);
    // No registration reached the server, and no session of the new daemon went to awaiting_scan.
    expect(server.connections.filter((c) => c.isRegistration).length).toBe(restart.registrationsBefore);
    const states = logEntries(restart.output)
      .filter((e) => e.msg === 'session state')
      .map((e) => e.state);
    expect(states).toContain('open');
    expect(states).not.toContain('awaiting_scan');
  }, 30_000);

  it('401: the phone unlinks a device; the instance ends logged_out, its auth folder goes, the operator is alerted', async () => {
    expect(existsSync(join(sessions, codeKey))).toBe(true);
    server.unlink(codeCompanion);
    await until('logged out', async () => (await status(codeKey))?.state === 'logged_out', daemon);
    await until('the auth folder removed', () => Promise.resolve(!existsSync(join(sessions, codeKey))), daemon);
    await until('the logout alert', () => Promise.resolve(alerts().some((t) => t.startsWith(`⚠️ ${codeKey}:`) && /unlinked/.test(t))), daemon);
  }, 90_000);

  it('515: WhatsApp asks for a restart; the instance reconnects at once and is open again', async () => {
    const before = loginsOf(server, PHONE_QR).length;
    const mark = daemon.output.length;
    server.liveConnection(PHONE_QR).streamError(515);
    await until('a new login after 515', () => Promise.resolve(loginsOf(server, PHONE_QR).at(-1)?.state === 'open' && loginsOf(server, PHONE_QR).length > before), daemon);
    await until('open after 515', async () => {
      const s = await status(qrKey);
      return s?.state === 'open' && s.lastError?.includes('restartRequired') === true;
    }, daemon);
    expect(loginsOf(server, PHONE_QR).length).toBe(before + 1);
    // At once: no backoff, straight from the close to a new socket.
    const session = logEntries(daemon.output.slice(mark)).filter((e) => e.instanceId === qrKey && e.module === 'session');
    expect(session.find((e) => e.msg === 'socket closed')).toMatchObject({ code: 515, action: 'reconnect_now' });
    expect(session.filter((e) => e.msg === 'session state').map((e) => e.state)).toEqual(['reconnecting', 'connecting', 'open']);
    // Still serving: a message after the reconnect reaches Chatwoot.
    const m = await relayed((await peers.Maria!.sendText(accountOf(PHONE_QR), 'ainda aí?')).id);
    expect(m.content).toBe('ainda aí?');
  }, 90_000);

  it('440: another session replaced this one; the instance halts with an alert and does not reconnect', async () => {
    const before = loginsOf(server, PHONE_QR).length;
    const mark = daemon.output.length;
    server.liveConnection(PHONE_QR).conflict();
    await until('halted', async () => (await status(qrKey))?.state === 'halted', daemon);
    await until('the replaced alert', () => Promise.resolve(alerts().some((t) => t.startsWith(`⚠️ ${qrKey}:`) && /replaced/.test(t))), daemon);
    // A reconnect would come within a few reconnect delays; none does, and the instance stays halted.
    await new Promise((r) => setTimeout(r, QUIET_AFTER_HALT_MS));
    expect(loginsOf(server, PHONE_QR).length).toBe(before);
    expect(qrCompanion.connection?.state).not.toBe('open');
    expect((await status(qrKey))?.state).toBe('halted');
    const session = logEntries(daemon.output.slice(mark)).filter((e) => e.instanceId === qrKey && e.module === 'session');
    expect(session.find((e) => e.msg === 'socket closed')).toMatchObject({ code: 440, action: 'stop_alert' });
    expect(session.filter((e) => e.msg === 'session state').map((e) => e.state)).toEqual(['halted']);
  }, 90_000);

  // libsignal (under rc14) prints whole session records, ratchet private keys included, with
  // console.info on every session change; the daemon keeps their objects out of its output.
  it('writes no Signal key material to its output', () => {
    const output = daemons.flatMap((d) => d.output).join('');
    expect(output).not.toMatch(/privKey|Closing session|Opening session/);
  });
});
