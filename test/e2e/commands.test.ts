/**
 * The erga command end to end: the Chatwoot double posts signed account
 * webhooks to the daemon as Chatwoot does; the daemon (primary, workers,
 * sandbox driver) answers in the command's conversation. Commands come from
 * an authorized WhatsApp number through a linked Ponte number, or from a
 * listed agent's private note; nobody else gets in.
 */
import { createHmac } from 'node:crypto';
import jsQRImport from 'jsqr';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, type Daemon, startDaemon, stopDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { chatwootApi, daemonEnv, linkSandbox, SECRET, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';

type QrDecoder = (data: Uint8ClampedArray, width: number, height: number) => { data: string } | null;
// jsqr is CommonJS with a default export.
const jsQR = (jsQRImport as unknown as { default?: QrDecoder }).default ?? (jsQRImport as unknown as QrDecoder);

const SIGNING = 'account-webhook-signing-secret';
const OPERATOR = '5521998765432';
const LINE = '5511900000001';

interface OutboxEntry {
  id: string;
  to: string;
  type: string;
  text?: string;
  caption?: string;
}

describe('the erga command, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  let prefix: string;
  let env: Record<string, string>;
  let accountId: number;
  let central: number;
  let vendas: number;
  let site: number;
  let ana: number;
  let bob: number;

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    central = double.addInbox({ accountId, name: 'Central Ponte' }).id;
    vendas = double.addInbox({ accountId, name: 'WhatsApp Vendas' }).id;
    site = double.addInbox({ accountId, name: 'Site' }).id;
    ana = double.addUser({ name: 'Ana', email: 'Ana@Example.com' }).id;
    bob = double.addUser({ name: 'Bob', email: 'bob@example.com' }).id;
    sessions = await tempDir('ponte-e2e-cmd-');
    prefix = randomPrefix();
    env = daemonEnv(
      { double, sessions, prefix },
      {
        CHATWOOT_ACCOUNT_WEBHOOK_SECRET: SIGNING,
        WEBHOOK_AUTHORIZED_PHONE_NUMBERS: '+55 (21) 99876-5432',
        WEBHOOK_AUTHORIZED_AGENT_EMAILS: 'ana@example.com',
        MAX_WORKERS: '2',
        SHUTDOWN_TIMEOUT_MS: '8000',
      },
    );
    daemon = await startDaemon(env);
    double.addAccountWebhook({ accountId, url: `${daemon.base}/webhook/comando?token=${SECRET}`, subscriptions: ['message_created'], secret: SIGNING });
    double.setInboxWebhook(central, `${daemon.base}/webhook/chatwoot/${accountId}-${central}?token=${SECRET}`);
    // The first number is linked from the admin API: the operator's line into Ponte.
    await linkSandbox(daemon, { account: accountId, inbox: central, phone: LINE });
  }, 90_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  const cw = (method: string, path: string, body?: unknown) => chatwootApi(double, accountId, method, path, body);

  /** A conversation as an agent (or a website visitor) would make it: any phone typed into the contact. */
  async function typedConversation(phone: string, inboxId: number): Promise<number> {
    const sourceId = `src-${inboxId}-${phone}`;
    let contactId = double.contacts(accountId).find((c) => c.phone_number === phone)?.id;
    if (contactId === undefined) {
      const c = (await cw('POST', '/contacts', { inbox_id: inboxId, name: `Visitante ${phone}`, phone_number: phone, source_id: sourceId })) as { payload: { contact: { id: number } } };
      contactId = c.payload.contact.id;
    } else {
      await cw('POST', `/contacts/${contactId}/contact_inboxes`, { inbox_id: inboxId, source_id: sourceId });
    }
    const conv = (await cw('POST', '/conversations', { source_id: sourceId, inbox_id: inboxId, contact_id: contactId })) as { id: number };
    return conv.id;
  }

  async function writeIncoming(conversationId: number, content: string): Promise<void> {
    await cw('POST', `/conversations/${conversationId}/messages`, { content, message_type: 'incoming' });
  }

  /** The operator writes to the central line from WhatsApp; returns the Chatwoot conversation Ponte relayed it into. */
  async function fromWhatsApp(text: string, id: string, from = OPERATOR): Promise<number> {
    expect((await api(daemon, 'POST', `/sandbox/instances/${accountId}-${central}/messages`, { from, pushName: 'Operador', text, id })).status).toBe(201);
    return until('the relayed command', () => Promise.resolve(double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === `WAID:${id}`))?.id), daemon);
  }

  const replies = (conversationId: number): CwMessageRecord[] => double.messages(accountId, conversationId).filter((m) => m.message_type === 'outgoing' && (m.source_id ?? '').startsWith('PONTE:'));
  const replyMatching = (conversationId: number, re: RegExp) => until(`a reply matching ${re}`, () => Promise.resolve(replies(conversationId).find((m) => re.test(m.content ?? ''))), daemon);
  const outbox = async () => ((await api(daemon, 'GET', `/sandbox/instances/${accountId}-${central}/outbox`)).json.messages as OutboxEntry[]) ?? [];

  function signedPost(body: string, secret = SIGNING): Promise<number> {
    const ts = String(Math.floor(Date.now() / 1000));
    const signature = `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;
    return fetch(`${daemon.base}/webhook/comando?token=${SECRET}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': signature }, body }).then((r) => r.status);
  }

  it('links a number from WhatsApp through a Ponte line: QR image, scan, link message, status, stop, all reaching the operator', async () => {
    const key = `${accountId}-${vendas}`;
    const conv = await fromWhatsApp(`ERGA ${vendas} ${accountId}`, 'CMD1');

    const qrMessage = await until('the QR image', () => Promise.resolve(replies(conv).find((m) => m.attachments.length > 0)), daemon);
    expect(qrMessage).toMatchObject({ private: false });
    expect(qrMessage.content).toMatch(/attempt 1 of 5/);
    const attachment = qrMessage.attachments[0]!;
    expect(attachment).toMatchObject({ file_type: 'image', content_type: 'image/png' });
    const png = PNG.sync.read(attachment.data);
    const decoded = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
    const shown = (await api(daemon, 'GET', `/admin/instances/${key}/qr?format=text`)).json.qr;
    expect(decoded?.data).toBe(shown);
    // The replies are outgoing messages in a Ponte inbox: they reach the operator on WhatsApp.
    await until('the QR on WhatsApp', async () => (await outbox()).find((e) => e.to === `${OPERATOR}@s.whatsapp.net` && e.type === 'image'), daemon);

    await api(daemon, 'POST', `/sandbox/instances/${key}/scan`, { phone: '5511955554444' });
    const linked = await replyMatching(conv, /Linked: \+5511955554444/);
    expect(linked.content).toContain(`/webhook/chatwoot/${key}`);
    expect(linked.content).not.toContain(SECRET);

    await fromWhatsApp('erga status', 'CMD2');
    const status = await replyMatching(conv, /instance\(s\)/);
    expect(status.content).toMatch(new RegExp(`${key}: inbox ${vendas}, account ${accountId}, open, \\+5511955554444`));

    await fromWhatsApp(`erga replay ${vendas}`, 'CMD2R');
    await replyMatching(conv, new RegExp(`Instance ${key} has no parked messages`));

    await fromWhatsApp(`erga stop ${vendas}`, 'CMD3');
    await replyMatching(conv, new RegExp(`Instance ${key} stopped`));

    await fromWhatsApp('erga 12', 'CMD4');
    const malformed = await replyMatching(conv, /expected/);
    expect(malformed.content).toContain('erga <inbox_id> <account_id>');
  }, 90_000);

  it('never takes a typed phone number for the operator: a website inbox, or an unrelayed message in a Ponte inbox', async () => {
    const widget = await typedConversation(`+${OPERATOR}`, site);
    const inPonteInbox = await typedConversation(`+${OPERATOR}`, central);
    await writeIncoming(widget, 'erga status');
    await writeIncoming(widget, `erga ${vendas} ${accountId}`);
    await writeIncoming(inPonteInbox, 'erga status');
    // A stranger on WhatsApp, and a group member who is the operator.
    const stranger = await fromWhatsApp('erga status', 'CMD5', '5511977776666');
    expect((await api(daemon, 'POST', `/sandbox/instances/${accountId}-${central}/messages`, { from: OPERATOR, group: { jid: '120363000000000009@g.us', subject: 'Equipe' }, text: 'erga status', id: 'CMD6' })).status).toBe(201);
    // The group is its own chat, so its relay is not ordered before the marker's: wait for it.
    const groupId = await until('the group message relayed', () => Promise.resolve(double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === 'WAID:CMD6'))?.id), daemon);

    // A marker command from the operator: once its reply is there, the ones before it were handled.
    const operator = await fromWhatsApp('erga help', 'CMD7');
    await replyMatching(operator, /erga status: every instance/);
    expect(replies(widget)).toEqual([]);
    expect(replies(inPonteInbox)).toEqual([]);
    expect(replies(stranger)).toEqual([]);
    expect(replies(groupId)).toEqual([]);
  }, 60_000);

  it("takes a listed agent's private note anywhere and answers privately; other agents and Ponte's own replies are not commands", async () => {
    const conv = await typedConversation('+5511966665555', site);
    double.createAgentMessage(accountId, conv, { content: 'erga status', private: true, userId: bob });
    double.createAgentMessage(accountId, conv, { content: 'erga help', private: true }); // the token's own user, not listed
    double.createAgentMessage(accountId, conv, { content: 'erga help', private: true, userId: ana });
    const help = await replyMatching(conv, /erga status: every instance/);
    expect(help.private).toBe(true);
    double.createAgentMessage(accountId, conv, { content: 'erga status', private: true, userId: ana });
    const status = await replyMatching(conv, /instance\(s\)/);
    expect(status.private).toBe(true);
    // Exactly these two replies: Bob's note and the token user's were refused, and the help text
    // Ponte wrote (it starts with the keyword) was not taken for a command.
    expect(replies(conv).map((m) => m.id).sort()).toEqual([help.id, status.id].sort());
    expect(replies(conv).every((m) => m.private)).toBe(true);
  }, 60_000);

  it('refuses unauthenticated requests, acts once on a repeated delivery', async () => {
    const conv = await typedConversation('+5511944443333', site);
    const body = JSON.stringify({ event: 'message_created', id: 999_999, content: 'erga status', message_type: 'outgoing', private: true, account: { id: accountId }, inbox: { id: site }, conversation: { id: conv }, sender: { type: 'user', email: 'ana@example.com' } });
    const ts = String(Math.floor(Date.now() / 1000));
    const sign = (t: string, secret = SIGNING) => `sha256=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
    const post = (url: string, headers: Record<string, string>) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }).then((r) => r.status);
    const url = `${daemon.base}/webhook/comando?token=${SECRET}`;
    expect(await post(url, {})).toBe(401);
    expect(await post(url, { 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': sign(ts, 'wrong') })).toBe(401);
    expect(await post(url, { 'x-chatwoot-timestamp': '1000', 'x-chatwoot-signature': sign('1000') })).toBe(401);
    expect(await post(`${daemon.base}/webhook/comando`, { 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': sign(ts) })).toBe(401);
    expect(await signedPost(body)).toBe(200);
    expect(await signedPost(body)).toBe(200);
    await replyMatching(conv, /instance\(s\)/);
    double.createAgentMessage(accountId, conv, { content: 'erga help', private: true, userId: ana });
    await replyMatching(conv, /erga status: every instance/);
    expect(replies(conv).filter((m) => /instance\(s\)/.test(m.content ?? ''))).toHaveLength(1);
  }, 60_000);

  it('a command cut off by a shutdown runs after the restart, once', async () => {
    const conv = await typedConversation('+5511922221111', site);
    // Chatwoot refuses the reply for a while: the command is still running when the daemon is stopped.
    const clear = double.faults.fail({ status: 503, route: 'POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages' });
    const body = JSON.stringify({ event: 'message_created', id: 888_888, content: 'erga status', message_type: 'outgoing', private: true, account: { id: accountId }, inbox: { id: site }, conversation: { id: conv }, sender: { type: 'user', email: 'ana@example.com' } });
    expect(await signedPost(body)).toBe(200);
    await until('the reply attempted', () => Promise.resolve(double.faults.injected().failed > 0), daemon);
    expect(await stopDaemon(daemon)).toBe(0);
    clear();
    daemon = await startDaemon(env);
    double.addAccountWebhook({ accountId, url: `${daemon.base}/webhook/comando?token=${SECRET}`, subscriptions: ['message_created'], secret: SIGNING });
    await replyMatching(conv, /instance\(s\)/);
    // A repeat of the same delivery after the restart is still a repeat.
    expect(await signedPost(body)).toBe(200);
    double.createAgentMessage(accountId, conv, { content: 'erga help', private: true, userId: ana });
    await replyMatching(conv, /erga status: every instance/);
    expect(replies(conv).filter((m) => /instance\(s\)/.test(m.content ?? ''))).toHaveLength(1);
  }, 90_000);
});
