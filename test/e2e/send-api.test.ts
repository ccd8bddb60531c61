/**
 * The send API end to end: another system posts to `/api/send` with
 * SEND_TOKEN; Ponte checks the number on the sandbox WhatsApp, finds or
 * creates the contact and conversation in the Chatwoot double, posts the
 * message there and sends it through the normal outbound path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, api, type Daemon, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { daemonEnv, linkSandbox, SECRET, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';
import type { OutboxEntry } from '../../src/sandbox/schemas.js';

const SEND = 'e2e-send-token-0123456789';
const STATUS = 'e2e-status-token-0123456789';
const NOT_ON_WHATSAPP = '5521977776666';

describe('send API, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let accountId: number;
  let key: string;

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    sessions = await tempDir('ponte-e2e-send-');
    daemon = await startDaemon(daemonEnv({ double, sessions, prefix }, { MAX_WORKERS: '1', SEND_TOKEN: SEND, STATUS_TOKEN: STATUS, SANDBOX_NOT_ON_WHATSAPP: NOT_ON_WHATSAPP }));
    const inboxId = double.addInbox({ accountId, name: 'WhatsApp Lembretes', webhookUrl: `${daemon.base}/webhook/chatwoot/${accountId}-1?token=${SECRET}` }).id;
    key = await linkSandbox(daemon, { account: accountId, inbox: inboxId, phone: '5511933332222' });
  }, 60_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  async function call(method: string, path: string, token: string | undefined, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${daemon.base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }
  const send = (body: Record<string, unknown>) => call('POST', '/api/send', SEND, { instance: key, ...body });
  const status = (reference: string) => call('GET', `/api/send/${reference}?instance=${key}`, SEND);
  const outbox = async () => ((await api(daemon, 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[]) ?? [];

  it('opens only to SEND_TOKEN, and SEND_TOKEN opens nothing else', async () => {
    const body = { instance: key, to: '+5511955554444', text: 'x' };
    expect((await call('POST', '/api/send', undefined, body)).status).toBe(401);
    expect((await call('POST', '/api/send', 'not-the-send-token-at-all', body)).status).toBe(401);
    for (const [token, name] of [[ADMIN, 'ADMIN_TOKEN'], [STATUS, 'STATUS_TOKEN']] as const) {
      const r = await call('POST', '/api/send', token, body);
      expect(r.status).toBe(403);
      expect(r.json.message).toContain(name);
      expect((await call('GET', `/api/send/anything?instance=${key}`, token)).status).toBe(403);
    }
    for (const path of ['/admin/instances', '/global-status', '/metrics']) {
      const r = await call('GET', path, SEND);
      expect(r.status, path).toBe(403);
      expect(r.json.message).toContain('SEND_TOKEN');
    }
    expect(double.messages(accountId, 1)).toEqual([]);
  });

  it('refuses bad requests with the field and reason', async () => {
    const bad = await send({ to: 'call me', text: 'Oi' });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/^to: /);
    expect((await send({ to: '+5511955554444' })).json.message).toMatch(/text: is required unless attachmentUrl/);
    expect((await send({ to: '+5511955554444', text: 'Oi', extra: 1 })).status).toBe(400);
    expect((await send({ to: '+5511955554444', text: 'Oi', options: [] })).json.message).toMatch(/^options: /);
    expect((await call('POST', '/api/send', SEND, { instance: '9-9', to: '+5511955554444', text: 'Oi' })).status).toBe(404);
    expect((await status('no-such-reference')).status).toBe(404);
  });

  it('answers 422 for a number that is not on WhatsApp, and creates nothing', async () => {
    const r = await send({ to: `+${NOT_ON_WHATSAPP}`, text: 'Seu pedido saiu' });
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({ error: 'not_on_whatsapp' });
    expect(r.json.message).toContain('not on WhatsApp');
    // The same number without its ninth digit is the same person: not on WhatsApp either.
    expect((await send({ to: '+55 21 7777-6666', text: 'Seu pedido saiu' })).status).toBe(422);
    expect(double.contacts(accountId).filter((c) => c.phone_number?.includes('77776666'))).toEqual([]);
  });

  it('refuses an attachment from a host that is not allowed, before creating anything', async () => {
    const r = await send({ to: '+5511944443333', text: 'Boleto', attachmentUrl: 'https://files.example.net/boleto.pdf' });
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({ error: 'attachment_refused' });
    expect(double.contacts(accountId).filter((c) => c.phone_number === '+5511944443333')).toEqual([]);
  });

  it('reaches the existing contact of a Brazilian number given without its ninth digit, sends once, and reports queued → sent → delivered → read', async () => {
    // The customer wrote before: one contact, one open conversation.
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: '5521998765432', pushName: 'Maria', text: 'Oi', id: 'INMARIA1' })).status).toBe(201);
    const conv = await until('the relayed message', () =>
      Promise.resolve(double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === 'WAID:INMARIA1'))?.id),
    );
    const contactsBefore = double.contacts(accountId).length;
    const created = () => double.webhookDeliveries().filter((d) => d.event === 'message_created' && d.status === 200).length;
    // The relayed message's own webhook first, so the count below is the API message's.
    await until('the relayed message announced', () => Promise.resolve(created() >= 1 || undefined));
    const announced = created();

    const r = await send({ to: '+55 (21) 9876-5432', text: 'Sua consulta é amanhã às 10h', reference: 'appointment-77' });
    expect(r.status).toBe(202);
    expect(r.json).toMatchObject({ reference: 'appointment-77', conversationId: conv, status: 'queued' });
    const messageId = r.json.messageId as number;
    expect(double.contacts(accountId).length).toBe(contactsBefore);
    expect(double.contacts(accountId).filter((c) => c.phone_number === '+5521998765432')).toHaveLength(1);
    const posted = double.messages(accountId, conv).find((m) => m.id === messageId);
    expect(posted).toMatchObject({ content: 'Sua consulta é amanhã às 10h' });

    const sent = await until('the message in the outbox', async () => (await outbox()).find((e) => e.text === 'Sua consulta é amanhã às 10h'));
    expect(sent.to).toBe('5521998765432@s.whatsapp.net');
    expect((await until('sent', async () => ((await status('appointment-77')).json.status === 'sent' ? true : undefined))) && true).toBe(true);

    // The same reference again (twice at once): the same ids, nothing new.
    const again = await Promise.all([send({ to: '+5521998765432', text: 'Sua consulta é amanhã às 10h', reference: 'appointment-77' }), send({ to: '+552198765432', text: 'Sua consulta é amanhã às 10h', reference: 'appointment-77' })]);
    for (const a of again) expect(a).toMatchObject({ status: 202, json: { reference: 'appointment-77', conversationId: conv, messageId } });

    // Chatwoot announced the message on the inbox webhook too; a later message in the conversation goes after whatever that queued.
    await until('the message_created webhook delivered', () => Promise.resolve(created() > announced || undefined));
    const later = await send({ to: '+5521998765432', text: 'Responda 1 para confirmar', reference: 'appointment-77-b' });
    expect(later.status).toBe(202);
    await until('the later message in the outbox', async () => (await outbox()).find((e) => e.text === 'Responda 1 para confirmar'));
    expect((await outbox()).filter((e) => e.text === 'Sua consulta é amanhã às 10h')).toHaveLength(1);
    expect(double.messages(accountId, conv).filter((m) => m.content === 'Sua consulta é amanhã às 10h')).toHaveLength(1);

    await api(daemon, 'POST', `/sandbox/instances/${key}/receipts`, { id: sent.id, status: 'delivered' });
    await until('delivered', async () => ((await status('appointment-77')).json.status === 'delivered' ? true : undefined));
    await api(daemon, 'POST', `/sandbox/instances/${key}/receipts`, { id: sent.id, status: 'read' });
    const read = await until('read', async () => {
      const s = await status('appointment-77');
      return s.json.status === 'read' ? s : undefined;
    });
    expect(read).toMatchObject({ status: 200, json: { reference: 'appointment-77', status: 'read', conversationId: conv, messageId } });
  });

  it('creates the contact and conversation of a new number, generates a reference, and sends options as a bot question', async () => {
    const r = await send({ to: '+5511922221111', text: 'Confirma a entrega?', options: ['Sim', 'Não'] });
    expect(r.status).toBe(202);
    const reference = r.json.reference as string;
    expect(reference).toMatch(/^[0-9a-f-]{36}$/);
    const contacts = double.contacts(accountId).filter((c) => c.phone_number === '+5511922221111');
    expect(contacts).toHaveLength(1);
    expect(contacts[0]!.identifier).toBe('5511922221111@s.whatsapp.net');
    const posted = double.messages(accountId, r.json.conversationId as number).find((m) => m.id === r.json.messageId);
    expect(posted).toMatchObject({ content_type: 'input_select', content_attributes: { items: [{ title: 'Sim', value: 'Sim' }, { title: 'Não', value: 'Não' }] } });
    const sent = await until('the question in the outbox', async () => (await outbox()).find((e) => e.text?.includes('Confirma a entrega?')));
    expect(sent.to).toBe('5511922221111@s.whatsapp.net');
    expect(sent.text).toContain('Sim');
    expect(sent.text).toContain('Não');
    await until('sent', async () => ((await status(reference)).json.status === 'sent' ? true : undefined));
  });

  it('answers 409 for a customer who opted out, and sends again once they write', async () => {
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: '5511944443333', pushName: 'Ana', text: 'PARAR', id: 'INOPT1' })).status).toBe(201);
    const labelled = () => double.contacts(accountId).find((c) => c.phone_number === '+5511944443333')?.labels?.includes('whatsapp-opt-out') ?? false;
    await until('the opt-out label', () => Promise.resolve(labelled() || undefined), daemon);
    const opted = await send({ to: '+5511944443333', text: 'Promoção de hoje', reference: 'promo-1' });
    expect(opted.status).toBe(409);
    expect(String(opted.json.message)).toMatch(/opted out/);
    expect((await status('promo-1')).status).toBe(404);
    expect((await outbox()).some((e) => e.text === 'Promoção de hoje')).toBe(false);

    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: '5511944443333', pushName: 'Ana', text: 'Quero sim', id: 'INOPT2' })).status).toBe(201);
    await until('the opt-out lifted', () => Promise.resolve(!labelled() || undefined), daemon);
    const accepted = await send({ to: '+5511944443333', text: 'Promoção de hoje', reference: 'promo-2' });
    expect(accepted).toMatchObject({ status: 202, json: { status: 'queued' } });
    await until('the message in the outbox', async () => (await outbox()).find((e) => e.text === 'Promoção de hoje'));
  });

  it('posts an attachment from Chatwoot with the message and sends it as a document with its caption', async () => {
    // A file Chatwoot holds (an agent's attachment elsewhere): its host is Chatwoot's own, so Ponte may fetch it.
    const host = double.conversations(accountId)[0]!.id;
    const pdf = Buffer.from('%PDF-1.4 boleto 123');
    const agent = double.createAgentMessage(accountId, host, { content: '', attachments: [{ fileName: 'boleto.pdf', contentType: 'application/pdf', data: pdf }] });
    const url = double.messages(accountId, host).find((m) => m.id === agent.id)!.attachments[0]!.data_url;

    const r = await send({ to: '+5511988887777', text: 'Seu boleto', attachmentUrl: url, reference: 'invoice-9' });
    expect(r.status).toBe(202);
    const posted = double.messages(accountId, r.json.conversationId as number).find((m) => m.id === r.json.messageId)!;
    expect(posted.content).toBe('Seu boleto');
    expect(posted.attachments).toHaveLength(1);
    expect(Buffer.from(posted.attachments[0]!.data).equals(pdf)).toBe(true);
    const sent = await until('the document in the outbox', async () => (await outbox()).find((e) => e.to === '5511988887777@s.whatsapp.net'));
    expect(sent).toMatchObject({ type: 'document', caption: 'Seu boleto', mimetype: 'application/pdf' });
    await until('sent', async () => ((await status('invoice-9')).json.status === 'sent' ? true : undefined));
  });
});
