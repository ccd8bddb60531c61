/**
 * WhatsApp refusing sends and restricting a number, on the production driver
 * against the loopback WhatsApp server, as rc14 reports them: an error ack
 * for one message (479, a stanza that did not validate) fails that message
 * alone; an error ack for the reach-out lock (463) and the lock's own
 * announcement, and the new-chat cap WhatsApp announces
 * (`MessageCappingInfoNotification`), stop proactive sends with a reason and
 * one alert while replies to customers go, until WhatsApp lifts them.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { api, type Daemon, instanceStatus, until } from '../support/daemon.js';
import { SECRET, startConversation, tearDown, tempDir } from '../support/e2e.js';
import { linkByQr, realDriverEnv, startRealDriverDaemon, textOf } from '../support/real-whatsapp.js';
import { randomPrefix } from '../support/redis.js';
import { quietLibsignal, type SimulatedPeer, startWhatsAppServer, type WhatsAppServer } from '../support/whatsapp-server/index.js';

const PHONE = '5511933330303';

describe('WhatsApp refusals and restrictions on the Baileys driver', () => {
  let server: WhatsAppServer;
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let accountId: number;
  let inboxId: number;
  let key: string;
  let notifyConv: number;
  let customerConv: number;
  let ana: SimulatedPeer;
  let strangers = 0;
  let loudLibsignal: (() => void) | undefined;

  /** The phone number of the next stranger. */
  const nextStranger = () => `55119710003${String(strangers + 1).padStart(2, '0')}`;

  /** A customer on WhatsApp who never wrote, and the conversation an agent starts with them. */
  async function stranger(): Promise<{ peer: SimulatedPeer; conv: number }> {
    const phone = nextStranger();
    strangers += 1;
    const peer = server.addPeer({ phone, pushName: `Cliente ${strangers}` });
    const conv = await startConversation(double, accountId, { inbox: inboxId, name: `Cliente ${strangers}`, phone: `+${phone}`, sourceId: `${phone}@s.whatsapp.net` });
    return { peer, conv };
  }

  const message = (conv: number, id: number): CwMessageRecord | undefined => double.messages(accountId, conv).find((m) => m.id === id);
  const statusOf = (conv: number, id: number) => message(conv, id)?.status;
  const reasonOf = (conv: number, id: number) => {
    const reason = message(conv, id)?.content_attributes.external_error;
    return typeof reason === 'string' ? reason : '';
  };
  const received = (peer: SimulatedPeer, text: string) => peer.messages.items.some((m) => textOf(m.message) === text);
  const restricted = async () => (await instanceStatus(daemon, key))?.restricted ?? null;
  const alerts = (text: string) => double.messages(accountId, notifyConv).filter((m) => (m.content ?? '').includes(key) && (m.content ?? '').includes(text));

  /** An agent writes `text` to a new stranger; resolves once Chatwoot shows it `status`. */
  async function proactive(text: string, status: 'sent' | 'failed'): Promise<{ peer: SimulatedPeer; conv: number; id: number }> {
    const s = await stranger();
    const { id } = double.createAgentMessage(accountId, s.conv, { content: text });
    await until(`"${text}" ${status}`, () => Promise.resolve(statusOf(s.conv, id) === status), daemon);
    return { ...s, id };
  }

  beforeAll(async () => {
    loudLibsignal = quietLibsignal();
    server = await startWhatsAppServer();
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    const site = double.addInbox({ accountId, name: 'Site' }).id;
    inboxId = double.addInbox({ accountId, name: 'WhatsApp Loja' }).id;
    key = `${accountId}-${inboxId}`;
    notifyConv = await startConversation(double, accountId, { inbox: site, name: 'Operações', sourceId: 'ops' });
    sessions = await tempDir('ponte-e2e-safe-real-');
    daemon = await startRealDriverDaemon(server, realDriverEnv({ double, sessions, prefix }));
    double.setInboxWebhook(inboxId, `${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`);
    expect((await api(daemon, 'POST', '/admin/instances', { inbox: inboxId, account: accountId, notify: { account: accountId, conversation: notifyConv } })).status).toBe(201);
    await linkByQr(daemon, server, key, PHONE);
    await until('open', async () => (await instanceStatus(daemon, key))?.state === 'open', daemon);
    // A customer who writes: the agent's answers to her are replies, never restricted.
    ana = server.addPeer({ phone: '5511987650303', pushName: 'Ana' });
    const hello = await ana.sendText(server.account(PHONE)!, 'Oi, queria falar com vocês');
    customerConv = (await until('the customer in Chatwoot', () => Promise.resolve(double.conversations(accountId).flatMap((cv) => double.messages(accountId, cv.id)).find((m) => m.source_id === `WAID:${hello.id}`)), daemon)).conversation_id;
  }, 90_000);

  afterAll(async () => {
    await tearDown({ daemons: [daemon], close: [server, double], prefix, dir: sessions });
    loudLibsignal?.();
  }, 60_000);

  afterEach(() => {
    expect(server.errors).toEqual([]);
    expect(double.violations).toEqual([]);
  });

  /** The agent answers the customer who wrote: it reaches her phone. */
  async function replyGoes(text: string): Promise<void> {
    const { id } = double.createAgentMessage(accountId, customerConv, { content: text });
    await until(`"${text}" on the customer's phone`, () => Promise.resolve(received(ana, text)), daemon);
    await until(`"${text}" sent`, () => Promise.resolve(statusOf(customerConv, id) === 'sent' || statusOf(customerConv, id) === 'delivered'), daemon);
  }

  it('an error ack for one message (479) fails that message with its code, and stops nothing else', async () => {
    const target = nextStranger();
    server.refuseMessages(PHONE, target, '479');
    const refused = await proactive('Olá! Temos novidades.', 'failed');
    expect(refused.peer.phone).toBe(target);
    expect(reasonOf(refused.conv, refused.id)).toBe('WhatsApp refused this message (error 479); it was not delivered. Send it again');
    expect(received(refused.peer, 'Olá! Temos novidades.')).toBe(false);
    server.refuseMessages(PHONE, target, undefined);

    // The next stranger gets their message: a 479 is no restriction of the number.
    const next = await proactive('Olá! Seu pedido chegou.', 'sent');
    await until('the next proactive message on the phone', () => Promise.resolve(received(next.peer, 'Olá! Seu pedido chegou.')), daemon);
    expect(alerts('new chats')).toEqual([]);
  }, 60_000);

  it("the reach-out lock (463): the refused message and the next proactive one fail with its reason, one alert, replies go; WhatsApp's lifting ends it", async () => {
    const target = nextStranger();
    server.refuseMessages(PHONE, target, '463');
    const refused = await proactive('Promoção de hoje', 'failed');
    expect(refused.peer.phone).toBe(target);
    expect(reasonOf(refused.conv, refused.id)).toMatch(/^WhatsApp is temporarily restricting this number from starting new chats \(until \d\d:\d\d UTC\); the message was not delivered$/);
    server.refuseMessages(PHONE, target, undefined);

    // During the lock the next proactive message fails unsent.
    const held = await proactive('Promoção de amanhã', 'failed');
    expect(reasonOf(held.conv, held.id)).toMatch(/temporarily restricting/);
    expect(received(held.peer, 'Promoção de amanhã')).toBe(false);
    await replyGoes('Oi Ana, em que posso ajudar?');
    await until('one alert', () => Promise.resolve(alerts('restricting this number from starting new chats').length === 1), daemon);

    // Shown in /global-status with the worker's next report.
    await until('the lock in /global-status', async () => (await restricted())?.kind === 'reachout', daemon);
    server.notifyMex(PHONE, 'NotificationUserReachoutTimelockUpdate', { xwa2_notify_account_reachout_timelock: { is_active: false } });
    await until('the lock lifted in /global-status', async () => (await restricted()) === null, daemon);
    const after = await proactive('Promoção da semana', 'sent');
    await until('the proactive message on the phone', () => Promise.resolve(received(after.peer, 'Promoção da semana')), daemon);
    expect(alerts('restricting this number from starting new chats')).toHaveLength(1);
  }, 90_000);

  it('the new-chat cap WhatsApp announces: proactive messages fail with its reason and one alert, replies go; the next cycle lifts it', async () => {
    const endsS = Math.floor(Date.now() / 1000) + 6 * 3600;
    const capping = (status: string, used: number) =>
      server.notifyMex(PHONE, 'MessageCappingInfoNotification', {
        xwa2_notify_new_chat_messages_capping_info_update: { capping_status: status, used_quota: used, total_quota: 50, cycle_start_timestamp: String(endsS - 86_400), cycle_end_timestamp: String(endsS) },
      });
    capping('CAPPED', 50);
    await until('the cap in /global-status', async () => (await restricted())?.kind === 'cap', daemon);
    expect(await restricted()).toEqual({ kind: 'cap', until: new Date(endsS * 1000).toISOString() });
    await until('the cap in the notify conversation', () => Promise.resolve(alerts("WhatsApp's limit of new chats for this number is reached (50 of 50 used)").length === 1), daemon);
    const capped = await proactive('Lançamento', 'failed');
    expect(reasonOf(capped.conv, capped.id)).toMatch(/^WhatsApp's limit of new chats for this number is reached \(until \d\d:\d\d UTC\); the message was not delivered$/);
    expect(received(capped.peer, 'Lançamento')).toBe(false);
    await replyGoes('Ana, seu pedido está pronto.');

    capping('NONE', 0);
    await until('the cap lifted in /global-status', async () => (await restricted()) === null, daemon);
    const after = await proactive('Lançamento da semana', 'sent');
    await until('the proactive message on the phone', () => Promise.resolve(received(after.peer, 'Lançamento da semana')), daemon);
    expect(alerts('limit of new chats')).toHaveLength(1);
  }, 90_000);
});
