/**
 * The Chatwoot double refuses what Chatwoot refuses, keeps Chatwoot's rules,
 * and every fault mode does what it says. Plain fetch, so nothing of Ponte's
 * own client is assumed here.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';

let double: ChatwootDouble;
let accountId: number;
let inboxId: number;

beforeEach(async () => {
  double = await startChatwootDouble({ seed: 42 });
  accountId = double.addAccount().id;
  inboxId = double.addInbox({ accountId, name: 'WhatsApp Vendas' }).id;
});

afterEach(async () => {
  await double.close();
});

async function api(method: string, path: string, body?: unknown, token = double.token): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`${double.url}/api/v1/accounts/${accountId}${path}`, {
    method,
    headers: { api_access_token: token, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* text bodies (rack-attack's 429) stay text */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

async function seedConversation(phone = '+5511987654321'): Promise<{ contactId: number; conversationId: number }> {
  const c = await api('POST', '/contacts', { inbox_id: inboxId, source_id: `${phone.slice(1)}@s.whatsapp.net`, name: 'Maria', phone_number: phone });
  const { contact } = (c.body as { payload: { contact: { id: number } } }).payload;
  const conv = await api('POST', '/conversations', { source_id: `${phone.slice(1)}@s.whatsapp.net`, inbox_id: inboxId, contact_id: contact.id });
  return { contactId: contact.id, conversationId: (conv.body as { id: number }).id };
}

describe('requests Chatwoot would refuse', () => {
  it('an unknown route: 404 and a violation', async () => {
    const r = await api('POST', '/contacts/bulk_create', {});
    expect(r.status).toBe(404);
    expect(double.violations).toHaveLength(1);
    expect(double.violations[0]).toContain('/contacts/bulk_create');
  });

  it('a body missing a required field: 422 and a violation', async () => {
    const r = await api('POST', '/actions/contact_merge', { base_contact_id: 1 });
    expect(r.status).toBe(422);
    expect(double.violations[0]).toMatch(/mergee_contact_id/);
  });

  it('a field of the wrong type or outside its enum: 422 and a violation', async () => {
    const { conversationId } = await seedConversation();
    expect((await api('POST', `/conversations/${conversationId}/messages`, { content: 'x', message_type: 'sideways' })).status).toBe(422);
    expect((await api('GET', `/conversations/abc/messages`)).status).toBe(422);
    expect(double.violations).toHaveLength(2);
  });

  it('the relaxations the code makes over the spec are accepted (no content, no inbox_id, null query_operator)', async () => {
    const { conversationId } = await seedConversation();
    expect((await api('POST', `/conversations/${conversationId}/messages`, { message_type: 'incoming', content_attributes: { is_unsupported: true } })).status).toBe(200);
    expect((await api('POST', '/contacts', { name: 'Sem inbox' })).status).toBe(200);
    const f = await api('POST', '/contacts/filter', { payload: [{ attribute_key: 'name', filter_operator: 'equal_to', values: ['Maria'], query_operator: null }] });
    expect(f.status).toBe(200);
    expect(double.violations).toEqual([]);
  });

  it('a wrong token: 401', async () => {
    expect((await api('GET', `/inboxes/${inboxId}`, undefined, 'nope')).status).toBe(401);
  });
});

describe("Chatwoot's rules", () => {
  it('a duplicate phone number or identifier: 422 naming the attribute, no id of the existing contact', async () => {
    await api('POST', '/contacts', { inbox_id: inboxId, name: 'A', phone_number: '+5511911112222', identifier: 'a@s.whatsapp.net' });
    const phone = await api('POST', '/contacts', { inbox_id: inboxId, name: 'B', phone_number: '+5511911112222' });
    expect(phone).toMatchObject({ status: 422, body: { message: 'Phone number has already been taken', attributes: ['phone_number'] } });
    const ident = await api('POST', '/contacts', { inbox_id: inboxId, name: 'C', identifier: 'a@s.whatsapp.net' });
    expect(ident).toMatchObject({ status: 422, body: { attributes: ['identifier'] } });
    const badPhone = await api('POST', '/contacts', { inbox_id: inboxId, name: 'D', phone_number: '11911112222' });
    expect(badPhone).toMatchObject({ status: 422, body: { attributes: ['phone_number'] } });
    expect(double.contacts(accountId)).toHaveLength(1);
  });

  it('a conversation created without source_id makes a second contact inbox (the orphan bug); with it, none', async () => {
    const { contactId } = await seedConversation();
    await api('POST', '/conversations', { source_id: '5511987654321@s.whatsapp.net', inbox_id: inboxId, contact_id: contactId });
    expect(double.contactInboxes(accountId)).toHaveLength(1);
    await api('POST', '/conversations', { inbox_id: inboxId, contact_id: contactId });
    expect(double.contactInboxes(accountId)).toHaveLength(2);
  });

  it('a source id owned by another contact in the inbox: 422 through conversations, 500 through contact create', async () => {
    const { contactId } = await seedConversation();
    const other = await api('POST', '/contacts', { name: 'Outro' });
    const otherId = (other.body as { payload: { contact: { id: number } } }).payload.contact.id;
    const conv = await api('POST', '/conversations', { source_id: '5511987654321@s.whatsapp.net', inbox_id: inboxId, contact_id: otherId });
    expect(conv).toMatchObject({ status: 422, body: { error: 'source_id should be unique' } });
    const dup = await api('POST', '/contacts', { inbox_id: inboxId, source_id: '5511987654321@s.whatsapp.net', name: 'X' });
    expect(dup.status).toBe(500);
    expect(double.contacts(accountId).map((c) => c.id).sort()).toEqual([contactId, otherId].sort());
  });

  it('contact_inboxes/filter finds the owner of a source id, or 404', async () => {
    const { contactId } = await seedConversation();
    const hit = await api('POST', '/contact_inboxes/filter', { inbox_id: inboxId, source_id: '5511987654321@s.whatsapp.net' });
    expect(hit).toMatchObject({ status: 200, body: { id: contactId } });
    expect((await api('POST', '/contact_inboxes/filter', { inbox_id: inboxId, source_id: 'nobody' })).status).toBe(404);
  });

  it('messages page before and after an id, oldest first', async () => {
    const { conversationId } = await seedConversation();
    const ids: number[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await api('POST', `/conversations/${conversationId}/messages`, { content: `m${i}`, message_type: 'incoming', source_id: `WAID:${i}` });
      ids.push((r.body as { id: number }).id);
    }
    const latest = (await api('GET', `/conversations/${conversationId}/messages`)).body as { payload: Array<{ id: number }> };
    expect(latest.payload.map((m) => m.id)).toEqual(ids.slice(-20));
    const after = (await api('GET', `/conversations/${conversationId}/messages?after=${ids[24]}`)).body as { payload: Array<{ id: number }> };
    expect(after.payload.map((m) => m.id)).toEqual(ids.slice(25));
    const before = (await api('GET', `/conversations/${conversationId}/messages?before=${ids[5]}`)).body as { payload: Array<{ id: number }> };
    expect(before.payload.map((m) => m.id)).toEqual(ids.slice(0, 5));
  });

  it('message status: read never goes back to delivered; external_error only when failed', async () => {
    const { conversationId } = await seedConversation();
    const m = (await api('POST', `/conversations/${conversationId}/messages`, { content: 'oi', message_type: 'outgoing' })).body as { id: number };
    const path = `/conversations/${conversationId}/messages/${m.id}`;
    expect((await api('PATCH', path, { status: 'read' })).body).toMatchObject({ status: 'read' });
    expect((await api('PATCH', path, { status: 'delivered' })).body).toMatchObject({ status: 'read' });
    expect((await api('PATCH', path, { status: 'failed', external_error: 'sem WhatsApp' })).body).toMatchObject({ status: 'failed', content_attributes: { external_error: 'sem WhatsApp' } });
    const sent = (await api('PATCH', path, { status: 'sent', external_error: 'ignored' })).body as { content_attributes: Record<string, unknown> };
    expect(sent.content_attributes.external_error).toBeUndefined();
  });

  it('delete is soft: the content is replaced and marked deleted', async () => {
    const { conversationId } = await seedConversation();
    const m = (await api('POST', `/conversations/${conversationId}/messages`, { content: 'segredo', message_type: 'incoming' })).body as { id: number };
    await api('DELETE', `/conversations/${conversationId}/messages/${m.id}`);
    const [stored] = double.messages(accountId, conversationId);
    expect(stored).toMatchObject({ content: 'This message was deleted', content_attributes: { deleted: true } });
  });

  it('contact merge moves conversations and contact inboxes to the base contact', async () => {
    const a = await seedConversation('+5511911110000');
    const b = await seedConversation('+551111110000');
    expect((await api('POST', '/actions/contact_merge', { base_contact_id: a.contactId, mergee_contact_id: b.contactId })).status).toBe(200);
    expect(double.contacts(accountId).map((c) => c.id)).toEqual([a.contactId]);
    expect(double.conversations(accountId).map((c) => c.contact_id)).toEqual([a.contactId, a.contactId]);
    expect(double.contactInboxes(accountId).every((ci) => ci.contact_id === a.contactId)).toBe(true);
  });

  it('200 messages per minute per conversation, then 422 Too many messages', async () => {
    await double.close();
    double = await startChatwootDouble({ messagesPerMinutePerConversation: 3 });
    accountId = double.addAccount().id;
    inboxId = double.addInbox({ accountId }).id;
    const { conversationId } = await seedConversation();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await api('POST', `/conversations/${conversationId}/messages`, { content: `${i}`, message_type: 'incoming' })).status);
    expect(statuses).toEqual([200, 200, 200, 422]);
  });
});

describe('faults', () => {
  it('fail with a ratio fails a seeded share of calls, without applying them', async () => {
    const remove = double.faults.fail({ status: 500, ratio: 0.5 });
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await api('POST', '/contacts', { name: `c${i}` })).status);
    remove();
    const failed = statuses.filter((s) => s === 500).length;
    expect(failed).toBeGreaterThan(5);
    expect(failed).toBeLessThan(35);
    expect(double.contacts(accountId)).toHaveLength(40 - failed);
    expect(double.faults.injected().failed).toBe(failed);
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(200);
  });

  it('the same seed fails the same calls', async () => {
    const run = async (): Promise<number[]> => {
      const d = await startChatwootDouble({ seed: 9 });
      const acc = d.addAccount().id;
      d.faults.fail({ status: 503, ratio: 0.3 });
      const out: number[] = [];
      for (let i = 0; i < 20; i++) out.push((await fetch(`${d.url}/api/v1/accounts/${acc}/inboxes`, { headers: { api_access_token: d.token } })).status);
      await d.close();
      return out;
    };
    expect(await run()).toEqual(await run());
  });

  it('fail for a window fails every call until the window ends or the fault is removed', async () => {
    const remove = double.faults.fail({ status: 503, forMs: 60_000 });
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(503);
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(503);
    remove();
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(200);
    double.faults.fail({ status: 503, forMs: 0 });
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(200);
  });

  it('429 like rack-attack: text body, no Retry-After unless asked for', async () => {
    const remove = double.faults.fail({ status: 429 });
    const bare = await api('GET', `/inboxes/${inboxId}`);
    expect(bare).toMatchObject({ status: 429, body: 'Retry later\n' });
    expect(bare.headers.get('retry-after')).toBeNull();
    remove();
    double.faults.fail({ status: 429, retryAfterS: 7 });
    expect((await api('GET', `/inboxes/${inboxId}`)).headers.get('retry-after')).toBe('7');
  });

  it('only the chosen route fails', async () => {
    double.faults.fail({ status: 500, route: 'POST /api/v1/accounts/{account_id}/contacts' });
    expect((await api('POST', '/contacts', { name: 'x' })).status).toBe(500);
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(200);
  });

  it.each(['status', 'reset', 'timeout'] as const)('a lost response (%s) applies the create and loses its answer', async (mode) => {
    const { conversationId } = await seedConversation();
    double.faults.loseResponses({ ratio: 1, mode, status: 502 });
    const outcome = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conversationId}/messages`, {
      method: 'POST',
      headers: { api_access_token: double.token, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'oi', message_type: 'incoming', source_id: 'WAID:LOST' }),
      signal: AbortSignal.timeout(300),
    }).then(
      (r) => r.status,
      () => 'no answer',
    );
    expect(outcome).toBe(mode === 'status' ? 502 : 'no answer');
    expect(double.messages(accountId, conversationId).map((m) => m.source_id)).toEqual(['WAID:LOST']);
    expect(double.faults.injected().lost).toBe(1);
  });

  it('slow holds answers back until removed', async () => {
    const get = () =>
      fetch(`${double.url}/api/v1/accounts/${accountId}/inboxes/${inboxId}`, { headers: { api_access_token: double.token }, signal: AbortSignal.timeout(200) }).then(
        (r) => r.status,
        () => 'no answer',
      );
    const remove = double.faults.slow(60_000);
    expect(await get()).toBe('no answer');
    remove();
    expect(await get()).toBe(200);
  });

  it('counts calls per route', async () => {
    await seedConversation();
    await api('GET', `/inboxes/${inboxId}`);
    expect(double.calls.byRoute()).toEqual({
      'POST /api/v1/accounts/{account_id}/contacts': 1,
      'POST /api/v1/accounts/{account_id}/conversations': 1,
      'GET /api/v1/accounts/{account_id}/inboxes/{id}': 1,
    });
    expect(double.calls.count()).toBe(3);
    double.calls.reset();
    expect(double.calls.count()).toBe(0);
  });
});

describe('webhooks', () => {
  it('posts message_created to the inbox webhook, signed like Chatwoot, in its payload shape', async () => {
    const received: Array<{ headers: http.IncomingHttpHeaders; raw: string }> = [];
    const server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        received.push({ headers: req.headers, raw });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      await double.close();
      double = await startChatwootDouble();
      accountId = double.addAccount().id;
      const hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook/chatwoot/x`;
      const inbox = double.addInbox({ accountId, name: 'Vendas', webhookUrl: hook, secret: 'inbox-secret' });
      inboxId = inbox.id;
      const { conversationId } = await seedConversation();
      const agent = double.createAgentMessage(accountId, conversationId, { content: 'Olá! Como posso ajudar?' });
      await double.close(); // waits for webhook deliveries
      double = await startChatwootDouble();
      const created = received.map((r) => ({ ...r, body: JSON.parse(r.raw) as Record<string, unknown> })).find((r) => r.body.event === 'message_created' && r.body.id === agent.id);
      expect(created).toBeDefined();
      const ts = String(created!.headers['x-chatwoot-timestamp']);
      const expected = `sha256=${createHmac('sha256', 'inbox-secret').update(`${ts}.${created!.raw}`).digest('hex')}`;
      expect(created!.headers['x-chatwoot-signature']).toBe(expected);
      expect(created!.headers['x-chatwoot-delivery']).toBeTruthy();
      expect(created!.body).toMatchObject({
        message_type: 'outgoing',
        content: 'Olá! Como posso ajudar?',
        private: false,
        inbox: { id: inboxId, name: 'Vendas' },
        conversation: { id: conversationId, contact_inbox: { source_id: '5511987654321@s.whatsapp.net' } },
        sender: { type: 'user' },
      });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('marks the message failed when the inbox webhook answers non-2xx', async () => {
    const server = http.createServer((_req, res) => res.writeHead(503).end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      await double.close();
      double = await startChatwootDouble();
      accountId = double.addAccount().id;
      inboxId = double.addInbox({ accountId, webhookUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` }).id;
      const { conversationId } = await seedConversation();
      const msg = double.createAgentMessage(accountId, conversationId, { content: 'oi' });
      while (!double.webhookDeliveries().some((d) => d.event === 'message_created')) await new Promise((r) => setTimeout(r, 10));
      expect(msg.status).toBe('failed');
      expect(msg.content_attributes.external_error).toContain('503');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
