/**
 * Sending that keeps a number safe, through the daemon: the limiter holds
 * agent-started conversations (shown held in /global-status) while replies
 * go at once; a simulated reach-out lock (463) fails proactive messages with
 * a reason and alerts once; an opted-out customer gets one answer, the
 * label, and no proactive message; "typing…" precedes each agent message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, api, type Daemon, instanceStatus, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { daemonEnv, scanSandbox, SECRET, startConversation, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';
import type { OutboxEntry } from '../../src/sandbox/schemas.js';

const OPT_OUT_REPLY = 'Ok, sem mais mensagens. / No more messages.';

describe('safe sending, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let accountId: number;
  let site: number;
  let notifyConv: number;

  /** A conversation an agent starts in `inbox` with a customer who never wrote. */
  async function agentStarted(inbox: number, phone: string): Promise<number> {
    const sourceId = inbox === site ? `src-${phone}` : `${phone}@s.whatsapp.net`;
    return startConversation(double, accountId, { inbox, name: `Cliente ${phone}`, phone: `+${phone}`, sourceId });
  }

  async function link(phone: string): Promise<string> {
    const inbox = double.addInbox({ accountId, name: `WhatsApp ${phone}`, webhookUrl: `${daemon.base}/webhook/chatwoot/${accountId}-PENDING?token=${SECRET}` }).id;
    const key = `${accountId}-${inbox}`;
    double.setInboxWebhook(inbox, `${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`);
    expect((await api(daemon, 'POST', '/admin/instances', { inbox, account: accountId, notify: { account: accountId, conversation: notifyConv } })).status).toBe(201);
    await scanSandbox(daemon, key, phone);
    return key;
  }

  const outbox = async (key: string) => ((await api(daemon, 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[]) ?? [];
  const held = async (key: string) => (await instanceStatus(daemon, key))?.queues.held ?? 0;
  const restriction = async (key: string) => (await instanceStatus(daemon, key))?.restricted ?? null;
  const message = (conv: number, id: number) => double.messages(accountId, conv).find((m) => m.id === id);

  async function customerWrites(key: string, from: string, text: string, id: string): Promise<number> {
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from, pushName: 'Cliente', text, id })).status).toBe(201);
    return until('the relayed message', () =>
      Promise.resolve(double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === `WAID:${id}`))?.id),
    );
  }

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    site = double.addInbox({ accountId, name: 'Site' }).id;
    sessions = await tempDir('ponte-e2e-safe-');
    daemon = await startDaemon(
      daemonEnv(
        { double, sessions, prefix },
        {
          MAX_WORKERS: '1',
          SENDS_PER_MINUTE: '2',
          NEW_CHAT_SENDS_PER_HOUR: '100',
          SEND_SPACING_MIN_MS: '0',
          SEND_SPACING_MAX_MS: '0',
          OUTBOUND_TYPING: 'true',
          OPT_OUT_REPLY,
        },
      ),
    );
    notifyConv = await agentStarted(site, '5521911110000');
  }, 60_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  it('holds agent-started conversations to SENDS_PER_MINUTE while a reply in a customer-started one goes at once, typing first', async () => {
    const key = await link('5511933330001');
    const inbox = Number(key.split('-')[1]);
    const started: Array<{ conv: number; id: number }> = [];
    for (let i = 1; i <= 5; i++) {
      const conv = await agentStarted(inbox, `551197000000${i}`);
      started.push({ conv, id: double.createAgentMessage(accountId, conv, { content: `Oferta ${i}` }).id });
    }
    await until('two proactive sends and three held', async () => (await held(key)) === 3 && (await outbox(key)).filter((e) => e.text?.startsWith('Oferta')).length === 2, daemon);

    const conv = await customerWrites(key, '5511960000001', 'Oi, tudo bem?', 'SAFEIN1');
    const reply = double.createAgentMessage(accountId, conv, { content: 'Tudo ótimo, como posso ajudar?' });
    const sent = await until('the reply in the outbox', async () => (await outbox(key)).find((e) => e.text === 'Tudo ótimo, como posso ajudar?'), daemon);
    await until('the reply sent', () => Promise.resolve(message(conv, reply.id)?.status === 'sent'), daemon);
    const box = await outbox(key);
    // Still only the limiter's two proactive messages: the reply did not wait behind the held ones.
    expect(box.filter((e) => e.text?.startsWith('Oferta')).length).toBe(2);
    expect(await held(key)).toBe(3);
    // "typing…" showed in that chat before the reply.
    const typing = box.findIndex((e) => e.type === 'typing' && e.to === sent.to);
    expect(typing).toBeGreaterThanOrEqual(0);
    expect(typing).toBeLessThan(box.findIndex((e) => e.id === sent.id));
    const metrics = await fetch(`${daemon.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } }).then((r) => r.text());
    expect(metrics).toMatch(new RegExp(`ponte_outbound_held\\{instance="${key}"\\} 3`));
  }, 90_000);

  it('a reach-out lock (463) fails proactive messages with a reason, alerts once, and lets replies go', async () => {
    const key = await link('5511933330002');
    const inbox = Number(key.split('-')[1]);
    const customer = await customerWrites(key, '5511960000002', 'Bom dia', 'SAFEIN2');
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/limits`, { reachoutLockMs: 3_600_000 })).status).toBe(200);

    const first = await agentStarted(inbox, '5511971000001');
    const m1 = double.createAgentMessage(accountId, first, { content: 'Promoção 1' });
    const failed1 = await until('the refused message failed', () => Promise.resolve(message(first, m1.id)?.status === 'failed' && message(first, m1.id)), daemon);
    expect(String(failed1.content_attributes.external_error)).toMatch(/WhatsApp is temporarily restricting this number from starting new chats \(until \d\d:\d\d UTC\)/);

    // During the lock a proactive message fails at once, unsent.
    const second = await agentStarted(inbox, '5511971000002');
    const m2 = double.createAgentMessage(accountId, second, { content: 'Promoção 2' });
    const failed2 = await until('the second proactive message failed', () => Promise.resolve(message(second, m2.id)?.status === 'failed' && message(second, m2.id)), daemon);
    expect(String(failed2.content_attributes.external_error)).toMatch(/temporarily restricting/);
    expect((await outbox(key)).some((e) => e.text === 'Promoção 2')).toBe(false);

    // A reply to the customer who wrote still goes.
    const r = double.createAgentMessage(accountId, customer, { content: 'Bom dia! Em que posso ajudar?' });
    await until('the reply sent', () => Promise.resolve(message(customer, r.id)?.status === 'sent'), daemon);
    const alerts = double.messages(accountId, notifyConv).filter((m) => (m.content ?? '').includes(key) && (m.content ?? '').includes('restricting this number'));
    expect(alerts).toHaveLength(1);
  }, 90_000);

  it("WhatsApp's new-chat cap: a warning passed on once; capped, proactive messages fail with its reason and one alert while replies go; lifted, they go again", async () => {
    const key = await link('5511933330004');
    const inbox = Number(key.split('-')[1]);
    const limits = (newChatCap: Record<string, unknown>) => api(daemon, 'POST', `/sandbox/instances/${key}/limits`, { newChatCap });
    const alertsWith = (text: string) => double.messages(accountId, notifyConv).filter((m) => (m.content ?? '').includes(key) && (m.content ?? '').includes(text));
    const customer = await customerWrites(key, '5511960000004', 'Boa tarde', 'SAFEIN4');

    expect((await limits({ status: 'FIRST_WARNING', used: 40, quota: 50, cycleEndsInMs: 6 * 3600_000 })).status).toBe(200);
    expect((await limits({ status: 'FIRST_WARNING', used: 41, quota: 50, cycleEndsInMs: 6 * 3600_000 })).status).toBe(200);
    await until('the warning in the notify conversation', () => Promise.resolve(alertsWith('close to its limit of new chats (40 of 50 used)').length === 1), daemon);
    // A warning stops nothing.
    const warned = await agentStarted(inbox, '5511972000001');
    const m1 = double.createAgentMessage(accountId, warned, { content: 'Novidade 1' });
    await until('the proactive message sent during the warning', () => Promise.resolve(message(warned, m1.id)?.status === 'sent'), daemon);

    expect((await limits({ status: 'CAPPED', used: 50, quota: 50, cycleEndsInMs: 6 * 3600_000 })).status).toBe(200);
    await until('the cap in /global-status', async () => (await restriction(key))?.kind === 'cap', daemon);
    const metrics = await fetch(`${daemon.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } }).then((r) => r.text());
    expect(metrics).toContain(`ponte_instance_restricted{instance="${key}",kind="cap"} 1`);
    expect(metrics).toContain(`ponte_instance_restricted{instance="${key}",kind="reachout"} 0`);
    const capped = await agentStarted(inbox, '5511972000002');
    const m2 = double.createAgentMessage(accountId, capped, { content: 'Novidade 2' });
    const failed = await until('the proactive message failed', () => Promise.resolve(message(capped, m2.id)?.status === 'failed' && message(capped, m2.id)), daemon);
    expect(String(failed.content_attributes.external_error)).toMatch(/^WhatsApp's limit of new chats for this number is reached \(until \d\d:\d\d UTC\); the message was not delivered$/);
    expect((await outbox(key)).some((e) => e.text === 'Novidade 2')).toBe(false);
    const r = double.createAgentMessage(accountId, customer, { content: 'Boa tarde! Diga.' });
    await until('the reply sent', () => Promise.resolve(message(customer, r.id)?.status === 'sent'), daemon);
    await until('the cap in the notify conversation', () => Promise.resolve(alertsWith("WhatsApp's limit of new chats for this number is reached (50 of 50 used)").length === 1), daemon);

    // The next cycle: WhatsApp says the cap is off, and proactive messages go again.
    expect((await limits({ status: 'NONE', used: 0, quota: 50 })).status).toBe(200);
    await until('the cap lifted in /global-status', async () => (await restriction(key)) === null, daemon);
    const after = await agentStarted(inbox, '5511972000003');
    const m3 = double.createAgentMessage(accountId, after, { content: 'Novidade 3' });
    await until('the proactive message sent after the cap', () => Promise.resolve(message(after, m3.id)?.status === 'sent'), daemon);
    expect(alertsWith("limit of new chats for this number is reached")).toHaveLength(1);
    expect(alertsWith('close to its limit')).toHaveLength(1);
  }, 90_000);

  it('the sandbox refuses a limits request that names nothing, or a cap status WhatsApp does not send', async () => {
    // Any instance the earlier cases linked.
    const [linked] = (await api(daemon, 'GET', '/global-status')).json.instances as Array<{ instance: string }>;
    const any = linked!.instance;
    const empty = await api(daemon, 'POST', `/sandbox/instances/${any}/limits`, {});
    expect(empty.status).toBe(400);
    expect(JSON.stringify(empty.json)).toContain('give reachoutLockMs, newChatCap or both');
    const bad = await api(daemon, 'POST', `/sandbox/instances/${any}/limits`, { newChatCap: { status: 'FULL' } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toContain('newChatCap.status');
  });

  it('an opted-out customer gets one answer, the label, and no proactive message until they write again', async () => {
    const key = await link('5511933330003');
    const customer = '5511960000003';
    const conv = await customerWrites(key, customer, '  Sáir ', 'SAFEOPT1');
    const contactId = () => double.conversations(accountId).find((c) => c.id === conv)!.contact_id;
    const labels = () => double.contacts(accountId).find((c) => c.id === contactId())?.labels ?? [];
    await until('the opt-out label', () => Promise.resolve(labels().includes('whatsapp-opt-out')), daemon);
    await until('the opt-out answer', async () => (await outbox(key)).some((e) => e.text === OPT_OUT_REPLY), daemon);
    // The keyword again: relayed, not answered again.
    await customerWrites(key, customer, 'STOP', 'SAFEOPT2');
    const refused = double.createAgentMessage(accountId, conv, { content: 'Temos uma novidade!' });
    const failed = await until('the agent message refused', () => Promise.resolve(message(conv, refused.id)?.status === 'failed' && message(conv, refused.id)), daemon);
    expect(String(failed.content_attributes.external_error)).toMatch(/opted out/);
    expect((await outbox(key)).filter((e) => e.text === OPT_OUT_REPLY)).toHaveLength(1);
    expect((await outbox(key)).some((e) => e.text === 'Temos uma novidade!')).toBe(false);

    // Writing again ends the opt-out: the label goes, and the answer to them goes too.
    await customerWrites(key, customer, 'Na verdade quero saber do pedido', 'SAFEOPT3');
    await until('the label removed', () => Promise.resolve(!labels().includes('whatsapp-opt-out')), daemon);
    const answer = double.createAgentMessage(accountId, conv, { content: 'Seu pedido saiu hoje.' });
    await until('the answer sent', () => Promise.resolve(message(conv, answer.id)?.status === 'sent'), daemon);
  }, 90_000);
});
