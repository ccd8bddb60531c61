/**
 * The Chatwoot double refuses what Chatwoot refuses, keeps Chatwoot's rules,
 * sends Chatwoot's webhooks, and every fault mode does what it says. Plain
 * fetch, so nothing of Ponte's own client is assumed here.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/chatwoot-webhooks');
const MESSAGES = 'POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages';

let double: ChatwootDouble;
let accountId: number;
let inboxId: number;

async function fresh(options: Parameters<typeof startChatwootDouble>[0] = {}, inbox: Parameters<ChatwootDouble['addInbox']>[0] | Omit<Parameters<ChatwootDouble['addInbox']>[0], 'accountId'> = {}): Promise<void> {
  double = await startChatwootDouble(options);
  accountId = double.addAccount().id;
  inboxId = double.addInbox({ name: 'WhatsApp Vendas', ...inbox, accountId }).id;
}

beforeEach(async () => {
  await fresh({ seed: 42 });
});

afterEach(async () => {
  await double.close();
});

interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

async function api(method: string, path: string, body?: unknown, token = double.token): Promise<Answer> {
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
    /* text bodies (rack-attack's 429, empty 404s) stay text */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

const idOf = (a: Answer): number => (a.body as { id: number }).id;
const contactIdOf = (a: Answer): number => (a.body as { payload: { contact: { id: number } } }).payload.contact.id;

async function seedConversation(phone = '+5511987654321'): Promise<{ contactId: number; conversationId: number; sourceId: string }> {
  const sourceId = `${phone.slice(1)}@s.whatsapp.net`;
  const contactId = contactIdOf(await api('POST', '/contacts', { inbox_id: inboxId, source_id: sourceId, name: 'Maria', phone_number: phone }));
  const conv = await api('POST', '/conversations', { source_id: sourceId, inbox_id: inboxId, contact_id: contactId });
  return { contactId, conversationId: idOf(conv), sourceId };
}

/** A local webhook receiver that records raw bodies and headers. */
async function receiver(status = 200): Promise<{ url: string; received: Array<{ headers: http.IncomingHttpHeaders; raw: string; body: Record<string, unknown> }>; close(): Promise<void> }> {
  const received: Array<{ headers: http.IncomingHttpHeaders; raw: string; body: Record<string, unknown> }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      received.push({ headers: req.headers, raw, body: JSON.parse(raw) as Record<string, unknown> });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function until<T>(what: string, probe: () => T | undefined | false): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const keysOf = (o: unknown): string[] => Object.keys(o as Record<string, unknown>);
const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Record<string, unknown>;

describe('requests Chatwoot would refuse', () => {
  it('an unknown route or method: 404 and a violation', async () => {
    const r = await api('POST', '/contacts/bulk_create', {});
    expect(r).toMatchObject({ status: 404, body: { error: 'Resource could not be found' } });
    expect((await api('PUT', `/inboxes/${inboxId}/messages`, {})).status).toBe(404);
    expect(double.violations).toHaveLength(2);
    expect(double.violations[0]).toContain('POST /api/v1/accounts/1/contacts/bulk_create');
  });

  it('a body missing what the spec requires: 422 and a violation naming the field', async () => {
    const { conversationId } = await seedConversation();
    expect((await api('POST', '/actions/contact_merge', { base_contact_id: 1 })).status).toBe(422);
    expect((await api('POST', `/conversations/${conversationId}/toggle_status`, {})).status).toBe(422);
    expect((await api('POST', '/contacts/filter', {})).status).toBe(422);
    expect((await api('POST', '/contact_inboxes/filter', { inbox_id: inboxId })).status).toBe(422);
    expect(double.violations).toHaveLength(4);
    expect(double.violations[0]).toMatch(/mergee_contact_id/);
    expect(double.violations[1]).toMatch(/status/);
    expect(double.violations[2]).toMatch(/payload/);
    expect(double.violations[3]).toMatch(/source_id/);
  });

  it('a field of the wrong type or outside its enum, a bad path or query parameter: 422 and a violation', async () => {
    const { conversationId } = await seedConversation();
    expect((await api('POST', `/conversations/${conversationId}/messages`, { content: 'x', message_type: 'sideways' })).status).toBe(422);
    expect((await api('POST', `/conversations/${conversationId}/messages`, { content: 42 })).status).toBe(422);
    expect((await api('GET', `/conversations/abc/messages`)).status).toBe(422);
    expect((await api('GET', `/conversations/${conversationId}/messages?after=latest`)).status).toBe(422);
    expect((await api('GET', `/conversations?status=closed`)).status).toBe(422);
    expect(double.violations).toHaveLength(5);
    expect(double.messages(accountId, conversationId)).toEqual([]);
  });

  it('a multipart form field outside the spec: 422 and a violation', async () => {
    const { conversationId } = await seedConversation();
    const form = new FormData();
    form.append('content', 'x');
    form.append('message_type', 'sideways');
    const res = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conversationId}/messages`, { method: 'POST', headers: { api_access_token: double.token }, body: form });
    expect(res.status).toBe(422);
    expect(double.violations[0]).toMatch(/message_type/);
  });

  it('what the code accepts beyond the spec is accepted: no content, no inbox_id, null query_operator, starts_with, an unknown status', async () => {
    const { conversationId } = await seedConversation();
    const m = await api('POST', `/conversations/${conversationId}/messages`, { message_type: 'incoming', content_attributes: { is_unsupported: true } });
    expect(m.status).toBe(200);
    expect((await api('POST', '/contacts', { name: 'Sem inbox', identifier: 'x@lid' })).status).toBe(200);
    const f = await api('POST', '/contacts/filter', {
      payload: [
        { attribute_key: 'phone_number', filter_operator: 'starts_with', values: ['+5511'], query_operator: 'OR' },
        { attribute_key: 'name', filter_operator: 'equal_to', values: ['Maria'], query_operator: null },
      ],
    });
    expect(f.status).toBe(200);
    // Messages::StatusUpdateService ignores a status it does not know: 200, nothing changes.
    const p = await api('PATCH', `/conversations/${conversationId}/messages/${idOf(m)}`, { status: 'seen' });
    expect(p).toMatchObject({ status: 200, body: { status: 'sent' } });
    const search = await api('GET', '/contacts/search?q=Maria&include_contact_inboxes=false');
    expect(search.status).toBe(200);
    expect(double.violations).toEqual([]);
  });

  it('a wrong token: 401 Invalid Access Token, nothing applied', async () => {
    const r = await api('POST', '/contacts', { name: 'x' }, 'nope');
    expect(r).toMatchObject({ status: 401, body: { error: 'Invalid Access Token' } });
    expect(double.contacts(accountId)).toEqual([]);
  });
});

describe('contacts', () => {
  it('a duplicate phone number, identifier or email (any case): 422 naming the attribute, no id of the existing contact', async () => {
    await api('POST', '/contacts', { inbox_id: inboxId, name: 'A', phone_number: '+5511911112222', identifier: 'a@s.whatsapp.net', email: 'Ana@Loja.com' });
    const phone = await api('POST', '/contacts', { inbox_id: inboxId, name: 'B', phone_number: '+5511911112222' });
    expect(phone).toEqual({ status: 422, body: { message: 'Phone number has already been taken', attributes: ['phone_number'] }, headers: phone.headers });
    expect(await api('POST', '/contacts', { name: 'C', identifier: 'a@s.whatsapp.net' })).toMatchObject({ status: 422, body: { message: 'Identifier has already been taken', attributes: ['identifier'] } });
    expect(await api('POST', '/contacts', { name: 'D', email: 'ana@LOJA.com' })).toMatchObject({ status: 422, body: { attributes: ['email'] } });
    expect(await api('POST', '/contacts', { name: 'E', phone_number: '11911112222' })).toMatchObject({
      status: 422,
      body: { message: 'Phone number should be in e164 format', attributes: ['phone_number'] },
    });
    expect(double.contacts(accountId)).toHaveLength(1);
    expect(double.violations).toEqual([]);
  });

  it('create answers {payload:{contact, contact_inbox}}; without source_id the contact inbox gets a UUID', async () => {
    const r = await api('POST', '/contacts', { inbox_id: inboxId, name: 'Maria', phone_number: '+5511987654321' });
    const payload = (r.body as { payload: { contact: { id: number; contact_inboxes: unknown[] }; contact_inbox: { source_id: string; inbox: { id: number } } } }).payload;
    expect(payload.contact_inbox.source_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload.contact_inbox.inbox.id).toBe(inboxId);
    expect(payload.contact.contact_inboxes).toEqual([{ source_id: payload.contact_inbox.source_id, inbox: expect.objectContaining({ id: inboxId, channel_type: 'Channel::Api' }) as unknown }]);
  });

  it('update replaces fields and merges additional/custom attributes; a taken phone is refused', async () => {
    const a = contactIdOf(await api('POST', '/contacts', { name: 'A', phone_number: '+5511900000001', additional_attributes: { wa_lid: '1@lid', city: 'SP' } }));
    await api('POST', '/contacts', { name: 'B', phone_number: '+5511900000002' });
    const u = await api('PUT', `/contacts/${a}`, { name: 'Ana', additional_attributes: { city: 'RJ' }, custom_attributes: { vip: true } });
    expect(u).toMatchObject({ status: 200, body: { payload: { id: a, name: 'Ana', additional_attributes: { wa_lid: '1@lid', city: 'RJ' }, custom_attributes: { vip: true } } } });
    expect((await api('PUT', `/contacts/${a}`, { phone_number: '+5511900000002' })).status).toBe(422);
    expect((await api('GET', `/contacts/${a}`)).body).toMatchObject({ payload: { phone_number: '+5511900000001' } });
  });

  it('search is a substring match on name, email, phone and identifier, 15 a page', async () => {
    for (let i = 0; i < 17; i++) await api('POST', '/contacts', { name: `Cliente ${i}`, phone_number: `+55119000000${String(i).padStart(2, '0')}` });
    await api('POST', '/contacts', { name: 'Outra', identifier: '5511987654321@s.whatsapp.net' });
    const p1 = (await api('GET', '/contacts/search?q=%2B551190000&page=1')).body as { meta: { count: number; has_more: boolean }; payload: unknown[] };
    expect(p1.meta).toMatchObject({ count: 17, has_more: true });
    expect(p1.payload).toHaveLength(15);
    const p2 = (await api('GET', '/contacts/search?q=%2B551190000&page=2')).body as { meta: { has_more: boolean }; payload: unknown[] };
    expect(p2).toMatchObject({ meta: { has_more: false } });
    expect(p2.payload).toHaveLength(2);
    const byIdentifier = (await api('GET', '/contacts/search?q=987654321@s')).body as { payload: Array<{ name: string }> };
    expect(byIdentifier.payload.map((c) => c.name)).toEqual(['Outra']);
  });

  it('filter: exact, case-insensitive, one leading +, OR/AND joined; equal_to compares with the first value only (and says so)', async () => {
    const ana = contactIdOf(await api('POST', '/contacts', { name: 'Ana', phone_number: '+5511987654321', identifier: 'ANA@s.whatsapp.net' }));
    const bia = contactIdOf(await api('POST', '/contacts', { name: 'Bia', phone_number: '+551187654321' }));
    await api('POST', '/contacts', { name: 'Sem dados' }); // no phone, email or identifier: never in filter results
    const filter = async (payload: unknown[]) => ((await api('POST', '/contacts/filter', { payload })).body as { payload: Array<{ id: number }> }).payload.map((c) => c.id);

    expect(await filter([{ attribute_key: 'phone_number', filter_operator: 'equal_to', values: ['5511987654321'] }])).toEqual([ana]);
    expect(await filter([{ attribute_key: 'identifier', filter_operator: 'equal_to', values: ['ana@s.whatsapp.net'] }])).toEqual([ana]);
    expect(
      await filter([
        { attribute_key: 'phone_number', filter_operator: 'equal_to', values: ['+5511987654321'], query_operator: 'OR' },
        { attribute_key: 'phone_number', filter_operator: 'equal_to', values: ['+551187654321'] },
      ]),
    ).toEqual([ana, bia]);
    expect(await filter([{ attribute_key: 'name', filter_operator: 'not_equal_to', values: ['ana'] }])).toEqual([bia]);
    expect(double.violations).toEqual([]);

    // Contacts::FilterService takes values[0]: the second number is silently ignored by Chatwoot.
    expect(await filter([{ attribute_key: 'phone_number', filter_operator: 'equal_to', values: ['+5511987654321', '+551187654321'] }])).toEqual([ana]);
    expect(double.violations).toHaveLength(1);
    expect(double.violations[0]).toMatch(/values\[0\] only/);

    // filter_keys.yml: identifier takes equal_to/not_equal_to only.
    const bad = await api('POST', '/contacts/filter', { payload: [{ attribute_key: 'identifier', filter_operator: 'contains', values: ['ana'] }] });
    expect(bad).toMatchObject({ status: 422, body: { error: expect.stringMatching(/allowed operators for identifier/) as unknown } });
  });

  it('contact inboxes: idempotent for the same contact and source id; another contact’s source id is a 500', async () => {
    const { contactId, sourceId } = await seedConversation();
    const again = await api('POST', `/contacts/${contactId}/contact_inboxes`, { inbox_id: inboxId, source_id: sourceId });
    expect(again).toMatchObject({ status: 200, body: { source_id: sourceId, inbox: { id: inboxId, channel_type: 'Channel::Api' } } });
    const other = contactIdOf(await api('POST', '/contacts', { name: 'Outro', identifier: 'outro@lid' }));
    expect((await api('POST', `/contacts/${other}/contact_inboxes`, { inbox_id: inboxId, source_id: sourceId })).status).toBe(500);
    expect(double.contactInboxes(accountId)).toHaveLength(1);
  });

  it('contact_inboxes/filter finds the owner of a source id, or 404 with an empty body', async () => {
    const { contactId, sourceId } = await seedConversation();
    expect(await api('POST', '/contact_inboxes/filter', { inbox_id: inboxId, source_id: sourceId })).toMatchObject({ status: 200, body: { id: contactId } });
    expect(await api('POST', '/contact_inboxes/filter', { inbox_id: inboxId, source_id: 'nobody' })).toMatchObject({ status: 404, body: '' });
  });

  it('a source id owned by another contact in the inbox: 422 through conversations, 500 (rolled back) through contact create', async () => {
    const { contactId, sourceId } = await seedConversation();
    const otherId = contactIdOf(await api('POST', '/contacts', { name: 'Outro', identifier: 'outro@lid' }));
    expect(await api('POST', '/conversations', { source_id: sourceId, inbox_id: inboxId, contact_id: otherId })).toMatchObject({ status: 422, body: { error: 'source_id should be unique' } });
    expect((await api('POST', '/contacts', { inbox_id: inboxId, source_id: sourceId, name: 'X', identifier: 'x@lid' })).status).toBe(500);
    expect(double.contacts(accountId).map((c) => c.id)).toEqual([contactId, otherId]);
  });

  it('merge moves conversations, messages and contact inboxes to the base, fills its blanks, and deletes the mergee', async () => {
    const a = await seedConversation('+5511911110000');
    const bId = contactIdOf(await api('POST', '/contacts', { inbox_id: inboxId, source_id: 'b@lid', name: 'B', identifier: 'b@lid', email: 'b@x.com' }));
    const bConv = idOf(await api('POST', '/conversations', { source_id: 'b@lid', inbox_id: inboxId, contact_id: bId }));
    await api('POST', `/conversations/${bConv}/messages`, { content: 'oi', message_type: 'incoming' });
    const merged = await api('POST', '/actions/contact_merge', { base_contact_id: a.contactId, mergee_contact_id: bId });
    expect(merged).toMatchObject({ status: 200, body: { id: a.contactId, phone_number: '+5511911110000', identifier: 'b@lid', email: 'b@x.com', name: 'Maria' } });
    expect(double.contacts(accountId).map((c) => c.id)).toEqual([a.contactId]);
    expect(double.conversations(accountId).map((c) => c.contact_id)).toEqual([a.contactId, a.contactId]);
    expect(double.contactInboxes(accountId).every((ci) => ci.contact_id === a.contactId)).toBe(true);
    expect(double.messages(accountId, bConv)[0]!.sender).toEqual({ type: 'contact', id: a.contactId });
    expect((await api('GET', `/contacts/${bId}`)).status).toBe(404);
    const convs = (await api('GET', `/contacts/${a.contactId}/conversations`)).body as { payload: Array<{ id: number }> };
    expect(convs.payload.map((c) => c.id).sort()).toEqual([a.conversationId, bConv].sort());
  });
});

describe('conversations', () => {
  it('without source_id, conversation create makes a second contact inbox every time (the orphan bug); with it, none', async () => {
    const { contactId, sourceId } = await seedConversation();
    await api('POST', '/conversations', { source_id: sourceId, inbox_id: inboxId, contact_id: contactId });
    expect(double.contactInboxes(accountId)).toHaveLength(1);
    await api('POST', '/conversations', { inbox_id: inboxId, contact_id: contactId });
    expect(double.contactInboxes(accountId)).toHaveLength(2);
    expect(double.conversations(accountId)).toHaveLength(3);
  });

  it('the answer has Chatwoot’s conversation shape: display id, inbox, status, contact_inbox.source_id, meta.sender', async () => {
    const { contactId, conversationId, sourceId } = await seedConversation();
    const got = await api('GET', `/conversations/${conversationId}`);
    expect(got.body).toMatchObject({ id: conversationId, inbox_id: inboxId, status: 'open', contact_inbox: { source_id: sourceId }, meta: { sender: { id: contactId } }, messages: [] });
    expect(typeof (got.body as { last_activity_at: unknown }).last_activity_at).toBe('number');
  });

  it('list: open by default, status=all, source_id, inbox_id', async () => {
    const a = await seedConversation('+5511900000001');
    const b = await seedConversation('+5511900000002');
    await api('POST', `/conversations/${b.conversationId}/toggle_status`, { status: 'resolved' });
    const ids = async (q: string) => ((await api('GET', `/conversations${q}`)).body as { data: { payload: Array<{ id: number }> } }).data.payload.map((c) => c.id).sort();
    expect(await ids('')).toEqual([a.conversationId]);
    expect(await ids('?status=all')).toEqual([a.conversationId, b.conversationId]);
    expect(await ids(`?status=all&source_id=${encodeURIComponent(b.sourceId)}&inbox_id=${inboxId}`)).toEqual([b.conversationId]);
    expect(await ids('?status=resolved')).toEqual([b.conversationId]);
  });

  it('lock_to_single_conversation returns the last conversation, even resolved; an incoming message reopens it', async () => {
    await double.close();
    await fresh({}, { lockToSingleConversation: true });
    const { contactId, conversationId, sourceId } = await seedConversation();
    const t = await api('POST', `/conversations/${conversationId}/toggle_status`, { status: 'resolved' });
    expect(t.body).toEqual({ meta: {}, payload: { success: true, conversation_id: conversationId, current_status: 'resolved', snoozed_until: null } });
    const again = await api('POST', '/conversations', { source_id: sourceId, inbox_id: inboxId, contact_id: contactId });
    expect(again.body).toMatchObject({ id: conversationId, status: 'resolved' });
    await api('POST', `/conversations/${conversationId}/messages`, { content: 'voltei', message_type: 'incoming' });
    expect(double.conversations(accountId)).toMatchObject([{ id: conversationId, status: 'open' }]);
    // Status changes leave activity messages, as in Chatwoot.
    expect(double.messages(accountId, conversationId).map((m) => m.message_type)).toEqual(['activity', 'incoming', 'activity']);
  });

  it('a deleted conversation answers 404, which is not a violation', async () => {
    const { conversationId } = await seedConversation();
    double.deleteConversation(accountId, conversationId);
    expect(await api('POST', `/conversations/${conversationId}/messages`, { content: 'oi', message_type: 'incoming' })).toMatchObject({
      status: 404,
      body: { error: 'Resource could not be found' },
    });
    expect((await api('GET', `/conversations/${conversationId}`)).status).toBe(404);
    expect(double.conversations(accountId)).toEqual([]);
    expect(double.violations).toEqual([]);
  });
});

describe('messages', () => {
  it('create answers an integer message_type and keeps source_id verbatim, duplicates included', async () => {
    const { conversationId } = await seedConversation();
    const body = { content: 'Oi!', message_type: 'incoming', source_id: 'WAID:1', content_attributes: { external_echo: true }, external_created_at: 1781704720 };
    const a = await api('POST', `/conversations/${conversationId}/messages`, body);
    await api('POST', `/conversations/${conversationId}/messages`, body);
    expect(a.body).toMatchObject({ message_type: 0, source_id: 'WAID:1', status: 'sent', content_attributes: { external_echo: true, external_created_at: 1781704720 } });
    expect((await api('POST', `/conversations/${conversationId}/messages`, { content: 'x' })).body).toMatchObject({ message_type: 1 });
    expect(double.messages(accountId, conversationId).map((m) => [m.source_id, m.message_type])).toEqual([
      ['WAID:1', 'incoming'],
      ['WAID:1', 'incoming'],
      [null, 'outgoing'],
    ]);
  });

  it('pages before and after an id, oldest first; both together include the after id', async () => {
    const { conversationId } = await seedConversation();
    const ids: number[] = [];
    for (let i = 0; i < 30; i++) ids.push(idOf(await api('POST', `/conversations/${conversationId}/messages`, { content: `m${i}`, message_type: 'incoming', source_id: `WAID:${i}` })));
    const page = async (q: string) => ((await api('GET', `/conversations/${conversationId}/messages${q}`)).body as { payload: Array<{ id: number }> }).payload.map((m) => m.id);
    expect(await page('')).toEqual(ids.slice(-20));
    expect(await page(`?after=${ids[24]}`)).toEqual(ids.slice(25));
    expect(await page(`?before=${ids[5]}`)).toEqual(ids.slice(0, 5));
    expect(await page(`?before=${ids[25]}`)).toEqual(ids.slice(5, 25));
    expect(await page(`?after=${ids[10]}&before=${ids[13]}`)).toEqual(ids.slice(10, 13));
  });

  it('status: read never goes back to delivered; external_error only with failed; unknown ones change nothing', async () => {
    const { conversationId } = await seedConversation();
    const id = idOf(await api('POST', `/conversations/${conversationId}/messages`, { content: 'oi', message_type: 'outgoing' }));
    const path = `/conversations/${conversationId}/messages/${id}`;
    expect((await api('PATCH', path, { status: 'read' })).body).toMatchObject({ status: 'read' });
    expect(await api('PATCH', path, { status: 'delivered' })).toMatchObject({ status: 200, body: { status: 'read' } });
    expect((await api('PATCH', path, { status: 'failed', external_error: 'sem WhatsApp' })).body).toMatchObject({ status: 'failed', content_attributes: { external_error: 'sem WhatsApp' } });
    const sent = (await api('PATCH', path, { status: 'sent', external_error: 'ignored' })).body as { status: string; content_attributes: Record<string, unknown> };
    expect(sent.status).toBe('sent');
    expect(sent.content_attributes.external_error).toBeNull();
    expect((await api('PATCH', `/conversations/${conversationId + 1}/messages/${id}`, { status: 'read' })).status).toBe(404);
  });

  it('delete is soft: the content is replaced, marked deleted, the attachments removed', async () => {
    const { conversationId } = await seedConversation();
    const form = new FormData();
    form.append('content', 'segredo');
    form.append('message_type', 'incoming');
    form.append('attachments[]', new Blob([new Uint8Array([1, 2, 3])], { type: 'image/png' }), 'a.png');
    const res = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conversationId}/messages`, { method: 'POST', headers: { api_access_token: double.token }, body: form });
    const created = (await res.json()) as { id: number; attachments: Array<{ data_url: string }> };
    const d = await api('DELETE', `/conversations/${conversationId}/messages/${created.id}`);
    expect(d.body).toMatchObject({ id: created.id, content: 'This message was deleted', content_attributes: { deleted: true } });
    expect(double.messages(accountId, conversationId)[0]).toMatchObject({ content: 'This message was deleted', content_type: 'text', content_attributes: { deleted: true }, attachments: [] });
    expect((await fetch(created.attachments[0]!.data_url)).status).toBe(404);
  });

  it('multipart: file_type from the part’s Content-Type, content_attributes as JSON or bracket fields, data_url serves the bytes', async () => {
    const { conversationId } = await seedConversation();
    const post = async (fields: Record<string, string>, files: Array<[string, string]>) => {
      const form = new FormData();
      for (const [k, v] of Object.entries(fields)) form.append(k, v);
      for (const [type, name] of files) form.append('attachments[]', new Blob([Buffer.from(`bytes of ${name}`)], { type }), name);
      const res = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conversationId}/messages`, { method: 'POST', headers: { api_access_token: double.token }, body: form });
      expect(res.status).toBe(200);
      return (await res.json()) as { content_attributes: Record<string, unknown>; private: boolean; attachments: Array<{ file_type: string; data_url: string; content_type: string }> };
    };
    const a = await post({ message_type: 'incoming', content_attributes: JSON.stringify({ is_unsupported: true }) }, [
      ['image/webp', 'a.webp'],
      ['video/3gpp', 'b.3gp'],
      ['audio/ogg; codecs=opus', 'c.ogg'],
      ['video/mp4', 'd.mp4'],
      ['application/octet-stream', 'e.bin'],
    ]);
    expect(a.attachments.map((x) => x.file_type)).toEqual(['image', 'file', 'audio', 'video', 'file']);
    expect(a.content_attributes).toEqual({ is_unsupported: true });
    const b = await post({ message_type: 'outgoing', private: 'true', 'content_attributes[external_echo]': 'true' }, []);
    expect(b).toMatchObject({ private: true, content_attributes: { external_echo: 'true' } });
    const download = await fetch(a.attachments[0]!.data_url);
    expect(download.headers.get('content-type')).toBe('image/webp');
    expect(Buffer.from(await download.arrayBuffer()).toString()).toBe('bytes of a.webp');
    expect(double.messages(accountId, conversationId)[0]!.attachments[2]).toMatchObject({ file_type: 'audio', file_name: 'c.ogg', data: Buffer.from('bytes of c.ogg') });
    expect(double.violations).toEqual([]);
  });

  it('in_reply_to and in_reply_to_external_id are resolved in the conversation and both overwritten (null when not found)', async () => {
    const { conversationId } = await seedConversation();
    const quoted = idOf(await api('POST', `/conversations/${conversationId}/messages`, { content: 'a', message_type: 'incoming', source_id: 'WAID:Q' }));
    const byExternal = await api('POST', `/conversations/${conversationId}/messages`, { content: 'b', content_attributes: { in_reply_to_external_id: 'WAID:Q' } });
    expect((byExternal.body as { content_attributes: unknown }).content_attributes).toEqual({ in_reply_to: quoted, in_reply_to_external_id: 'WAID:Q' });
    const byId = await api('POST', `/conversations/${conversationId}/messages`, { content: 'c', content_attributes: { in_reply_to: quoted } });
    expect((byId.body as { content_attributes: unknown }).content_attributes).toEqual({ in_reply_to: quoted, in_reply_to_external_id: 'WAID:Q' });
    const missing = await api('POST', `/conversations/${conversationId}/messages`, { content: 'd', content_attributes: { in_reply_to_external_id: 'WAID:NOPE' } });
    expect((missing.body as { content_attributes: unknown }).content_attributes).toEqual({ in_reply_to: null, in_reply_to_external_id: null });
  });

  it('the per-conversation limit: then 422 Too many messages', async () => {
    await double.close();
    await fresh({ messagesPerMinutePerConversation: 3 });
    const { conversationId } = await seedConversation();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await api('POST', `/conversations/${conversationId}/messages`, { content: `${i}`, message_type: 'incoming' })).status);
    expect(statuses).toEqual([200, 200, 200, 422]);
    expect((await api('POST', `/conversations/${conversationId}/messages`, { content: 'x' })).body).toEqual({ error: 'Validation failed: Too many messages' });
    expect(double.messages(accountId, conversationId)).toHaveLength(3);
  });

  it('retry (the dashboard button): status sent, content_attributes emptied', async () => {
    const { conversationId } = await seedConversation();
    const id = idOf(await api('POST', `/conversations/${conversationId}/messages`, { content: 'x' }));
    await api('PATCH', `/conversations/${conversationId}/messages/${id}`, { status: 'failed', external_error: 'offline' });
    const r = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conversationId}/messages/${id}/retry`, { method: 'POST', headers: { api_access_token: double.token } });
    expect(r.status).toBe(200);
    expect(double.messages(accountId, conversationId)[0]).toMatchObject({ status: 'sent', content_attributes: {} });
    expect(double.violations).toEqual([]);
  });
});

describe('inboxes, inbox members and the profile', () => {
  const webhookUrl = 'https://ponte.example.com/webhook/chatwoot/1-2?token=t';

  it('creates an API inbox, answering its secret; PATCH sets the channel webhook URL, which then gets the inbox’s events signed with that secret', async () => {
    const created = await api('POST', '/inboxes', { name: 'Loja', channel: { type: 'api', webhook_url: 'https://ponte.example.com/pending' } });
    expect(created.status).toBe(200);
    const inbox = created.body as { id: number; name: string; channel_type: string; webhook_url: string; secret: string };
    expect(inbox).toMatchObject({ name: 'Loja', channel_type: 'Channel::Api', webhook_url: 'https://ponte.example.com/pending' });
    expect(inbox.secret).toMatch(/^[0-9a-f]{32}$/);
    const patched = await api('PATCH', `/inboxes/${inbox.id}`, { channel: { webhook_url: webhookUrl } });
    expect(patched).toMatchObject({ status: 200, body: { id: inbox.id, webhook_url: webhookUrl, secret: inbox.secret } });
    expect(double.inboxes(accountId).find((i) => i.id === inbox.id)).toMatchObject({ name: 'Loja', webhook_url: webhookUrl, members: [] });
    expect((await api('GET', `/inboxes/${inbox.id}`)).body).toMatchObject({ webhook_url: webhookUrl });

    const hook = await receiver();
    try {
      await api('PATCH', `/inboxes/${inbox.id}`, { channel: { webhook_url: hook.url } });
      const contactId = contactIdOf(await api('POST', '/contacts', { inbox_id: inbox.id, source_id: 'loja-1', name: 'Maria' }));
      const conv = idOf(await api('POST', '/conversations', { source_id: 'loja-1', inbox_id: inbox.id, contact_id: contactId }));
      await api('POST', `/conversations/${conv}/messages`, { content: 'oi', message_type: 'incoming' });
      const created = await until('the new inbox’s webhook', () => hook.received.find((r) => r.body.event === 'message_created'));
      const ts = String(created.headers['x-chatwoot-timestamp']);
      expect(created.headers['x-chatwoot-signature']).toBe(`sha256=${createHmac('sha256', inbox.secret).update(`${ts}.${created.raw}`).digest('hex')}`);
      expect(double.violations).toEqual([]);
    } finally {
      await double.close();
      await hook.close();
      await fresh();
    }
  });

  it('refuses what Chatwoot refuses: no channel, an unknown channel type, a body against the spec, a blank name, a webhook URL over 2,048 characters', async () => {
    expect((await api('POST', '/inboxes', { name: 'Loja' })).status).toBe(422);
    expect((await api('POST', '/inboxes', { name: 'Loja', channel: { type: 'fax' } })).status).toBe(422);
    expect((await api('POST', '/inboxes', { name: 'Loja', channel: { type: 'api', webhook_url: 42 } })).status).toBe(422);
    expect((await api('POST', '/inboxes', { name: 42, channel: { type: 'api' } })).status).toBe(422);
    expect(double.violations).toHaveLength(4);
    expect(double.violations[1]).toMatch(/channel/);
    // What the spec allows but the models refuse: 422 {message, attributes}, not a violation.
    expect(await api('POST', '/inboxes', { name: ' ', channel: { type: 'api' } })).toMatchObject({ status: 422, body: { message: "Name can't be blank", attributes: ['name'] } });
    const long = `https://ponte.example.com/${'x'.repeat(2048)}`;
    expect(await api('POST', '/inboxes', { name: 'Loja', channel: { type: 'api', webhook_url: long } })).toMatchObject({ status: 422, body: { attributes: ['webhook_url'] } });
    expect(await api('PATCH', `/inboxes/${inboxId}`, { channel: { webhook_url: long } })).toMatchObject({ status: 422, body: { attributes: ['webhook_url'] } });
    expect((await api('PATCH', '/inboxes/999', { channel: { webhook_url: webhookUrl } })).status).toBe(404);
    expect(double.violations).toHaveLength(4);
    expect(double.inboxes(accountId).map((i) => i.id)).toEqual([inboxId]);
  });

  it('adds members once each; an unknown user fails the whole request; the answer lists the members', async () => {
    const ana = double.addUser({ name: 'Ana', email: 'ana@example.com' }).id;
    const added = await api('POST', '/inbox_members', { inbox_id: inboxId, user_ids: [ana, 1] });
    expect(added.status).toBe(200);
    expect((added.body as { payload: Array<{ id: number; email: string; role: string }> }).payload).toEqual([
      expect.objectContaining({ id: ana, email: 'ana@example.com', role: 'agent' }),
      expect.objectContaining({ id: 1, role: 'administrator' }),
    ]);
    expect((await api('POST', '/inbox_members', { inbox_id: inboxId, user_ids: [ana] })).status).toBe(200);
    expect(await api('POST', '/inbox_members', { inbox_id: inboxId, user_ids: [ana, 999] })).toMatchObject({ status: 422, body: { message: 'User must exist' } });
    expect(double.inboxes(accountId)[0]!.members).toEqual([ana, 1]);
    expect((await api('POST', '/inbox_members', { inbox_id: 999, user_ids: [ana] })).status).toBe(404);
    expect((await api('POST', '/inbox_members', { inbox_id: inboxId, user_ids: 'ana' })).status).toBe(422);
    expect(double.violations).toHaveLength(1);
  });

  it('an agent token may neither create nor change an inbox nor add members (401, as Pundit answers), and sees no secrets', async () => {
    double.setTokenRole(accountId, 'agent');
    const refused = { status: 401, body: { error: 'You are not authorized to do this action' } };
    expect(await api('POST', '/inboxes', { name: 'Loja', channel: { type: 'api' } })).toMatchObject(refused);
    expect(await api('PATCH', `/inboxes/${inboxId}`, { channel: { webhook_url: webhookUrl } })).toMatchObject(refused);
    expect(await api('POST', '/inbox_members', { inbox_id: inboxId, user_ids: [1] })).toMatchObject(refused);
    expect((await api('GET', `/inboxes/${inboxId}`)).body).not.toHaveProperty('secret');
    expect(double.inboxes(accountId)).toEqual([expect.objectContaining({ id: inboxId, webhook_url: null, members: [] })]);
    expect(double.violations).toEqual([]);
  });

  it('the profile names the token’s user and its role in every account', async () => {
    const other = double.addAccount().id;
    double.setTokenRole(other, 'agent');
    const res = await fetch(`${double.url}/api/v1/profile`, { headers: { api_access_token: double.token } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: 1, email: 'api@ponte.invalid', accounts: [{ id: accountId, role: 'administrator' }, { id: other, role: 'agent' }] });
    expect((await fetch(`${double.url}/api/v1/profile`, { headers: { api_access_token: 'nope' } })).status).toBe(401);
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
    expect(statuses.every((s) => s === 200 || s === 500)).toBe(true);
    expect(double.contacts(accountId)).toHaveLength(40 - failed);
    expect(double.faults.injected().failed).toBe(failed);
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(200);
  });

  it('the same seed fails the same calls; another seed, others', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const d = await startChatwootDouble({ seed });
      const acc = d.addAccount().id;
      d.faults.fail({ status: 503, ratio: 0.3 });
      const out: number[] = [];
      for (let i = 0; i < 30; i++) out.push((await fetch(`${d.url}/api/v1/accounts/${acc}/inboxes`, { headers: { api_access_token: d.token } })).status);
      await d.close();
      return out;
    };
    const first = await run(9);
    expect(await run(9)).toEqual(first);
    expect(await run(10)).not.toEqual(first);
  });

  it('fail for a window fails every call until the window ends or the fault is removed', async () => {
    const remove = double.faults.fail({ status: 503, forMs: 60_000 });
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(503);
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(503);
    remove();
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(200);
    double.faults.fail({ status: 503, forMs: 2000 });
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(503);
    await new Promise((r) => setTimeout(r, 2100));
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(200);
  });

  it('429 like rack-attack: text/plain "Retry later", no Retry-After unless asked for', async () => {
    const remove = double.faults.fail({ status: 429 });
    const bare = await api('GET', `/inboxes/${inboxId}`);
    expect(bare).toMatchObject({ status: 429, body: 'Retry later\n' });
    expect(bare.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(bare.headers.get('retry-after')).toBeNull();
    remove();
    double.faults.fail({ status: 429, retryAfterS: 7 });
    expect((await api('GET', `/inboxes/${inboxId}`)).headers.get('retry-after')).toBe('7');
    expect(double.faults.injected().rateLimited).toBe(2);
  });

  it('only the chosen route fails; clear removes every fault', async () => {
    double.faults.fail({ status: 500, route: 'POST /api/v1/accounts/{account_id}/contacts' });
    expect((await api('POST', '/contacts', { name: 'x' })).status).toBe(500);
    expect((await api('GET', `/inboxes/${inboxId}`)).status).toBe(200);
    double.faults.clear();
    expect((await api('POST', '/contacts', { name: 'x' })).status).toBe(200);
  });

  it.each(['status', 'reset', 'timeout'] as const)('a lost response (%s) applies the create and loses its answer', async (mode) => {
    const { conversationId } = await seedConversation();
    double.faults.loseResponses({ ratio: 1, mode, status: 502, route: MESSAGES });
    const outcome = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conversationId}/messages`, {
      method: 'POST',
      headers: { api_access_token: double.token, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'oi', message_type: 'incoming', source_id: 'WAID:LOST' }),
      signal: AbortSignal.timeout(mode === 'status' ? 10_000 : 1000),
    }).then(
      (r) => r.status,
      () => 'no answer',
    );
    expect(outcome).toBe(mode === 'status' ? 502 : 'no answer');
    expect(double.messages(accountId, conversationId).map((m) => m.source_id)).toEqual(['WAID:LOST']);
    expect(double.faults.injected().lost).toBe(1);
    // GETs are never lost.
    expect((await api('GET', `/conversations/${conversationId}`)).status).toBe(200);
  });

  it('slow holds answers back until removed', async () => {
    const get = (waitMs: number) =>
      fetch(`${double.url}/api/v1/accounts/${accountId}/inboxes/${inboxId}`, { headers: { api_access_token: double.token }, signal: AbortSignal.timeout(waitMs) }).then(
        (r) => r.status,
        () => 'no answer',
      );
    const remove = double.faults.slow(60_000);
    expect(await get(500)).toBe('no answer');
    remove();
    expect(await get(10_000)).toBe(200);
  });

  it('counts every call per route template, faulted and refused ones too', async () => {
    await seedConversation();
    await api('GET', `/inboxes/${inboxId}`);
    double.faults.fail({ status: 503, route: 'GET /api/v1/accounts/{account_id}/inboxes/{id}' });
    await api('GET', `/inboxes/${inboxId}`);
    await api('GET', '/nowhere');
    expect(double.calls.byRoute()).toEqual({
      'POST /api/v1/accounts/{account_id}/contacts': 1,
      'POST /api/v1/accounts/{account_id}/conversations': 1,
      'GET /api/v1/accounts/{account_id}/inboxes/{id}': 2,
      'GET /api/v1/accounts/1/nowhere': 1,
    });
    expect(double.calls.count()).toBe(5);
    double.calls.reset();
    expect(double.calls.count()).toBe(0);
    expect(double.calls.byRoute()).toEqual({});
  });
});

describe('webhooks', () => {
  it('posts message_created to the inbox webhook, signed like Chatwoot, in the payload shape of the samples', async () => {
    const hook = await receiver();
    try {
      await double.close();
      await fresh({}, { name: 'Vendas', webhookUrl: hook.url, secret: 'inbox-secret' });
      const { conversationId, sourceId, contactId } = await seedConversation();
      const incoming = idOf(await api('POST', `/conversations/${conversationId}/messages`, { content: 'a <b> & c', message_type: 'incoming', source_id: 'WAID:1' }));
      const agent = double.createAgentMessage(accountId, conversationId, { content: 'Olá! Como posso ajudar?' });
      await double.close(); // waits for the deliveries
      await fresh();

      const created = hook.received.find((r) => r.body.event === 'message_created' && r.body.id === agent.id)!;
      const ts = String(created.headers['x-chatwoot-timestamp']);
      expect(created.headers['x-chatwoot-signature']).toBe(`sha256=${createHmac('sha256', 'inbox-secret').update(`${ts}.${created.raw}`).digest('hex')}`);
      expect(created.headers['x-chatwoot-delivery']).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.body).toMatchObject({
        message_type: 'outgoing',
        content: 'Olá! Como posso ajudar?',
        private: false,
        source_id: null,
        inbox: { id: inboxId, name: 'Vendas' },
        account: { id: accountId },
        conversation: { id: conversationId, inbox_id: inboxId, status: 'open', contact_inbox: { source_id: sourceId }, meta: { sender: { id: contactId } } },
        sender: { type: 'user' },
      });
      expect(created.body).not.toHaveProperty('status');
      // Keys in the serializers' order, as in the samples.
      const sample = fixture('message_created.agent_text_reply.json');
      expect(keysOf(created.body)).toEqual(keysOf(sample));
      expect(keysOf(created.body.conversation)).toEqual(keysOf(sample.conversation));
      const convMsg = (created.body.conversation as { messages: unknown[] }).messages[0];
      expect(keysOf(convMsg)).toEqual(keysOf((sample.conversation as { messages: unknown[] }).messages[0]).filter((k) => k !== 'attachments'));

      // The incoming message goes to the inbox webhook too; Rails escapes <, > and & in JSON.
      const echo = hook.received.find((r) => r.body.event === 'message_created' && r.body.id === incoming)!;
      expect(echo.raw).toContain('a \\u003cb\\u003e \\u0026 c');
      expect(echo.body).toMatchObject({ message_type: 'incoming', content: 'a <b> & c', source_id: 'WAID:1', sender: { id: contactId, phone_number: '+5511987654321' } });
      expect(echo.body.sender).not.toHaveProperty('type');
      expect(hook.received.map((r) => r.body.event)).toContain('conversation_created');
    } finally {
      await hook.close();
    }
  });

  it('account webhooks get only their subscribed events, from every inbox, with their own secret', async () => {
    const hook = await receiver();
    try {
      double.addAccountWebhook({ accountId, url: hook.url, subscriptions: ['message_created', 'conversation_status_changed'], secret: 'acct' });
      const { conversationId } = await seedConversation();
      await api('POST', `/conversations/${conversationId}/messages`, { content: 'erga 12 3', message_type: 'incoming' });
      await api('POST', `/conversations/${conversationId}/toggle_status`, { status: 'resolved' });
      const statusChanged = await until('the status webhook', () => hook.received.find((r) => r.body.event === 'conversation_status_changed'));
      expect(statusChanged.body).toMatchObject({ id: conversationId, status: 'resolved', changed_attributes: null });
      expect(keysOf(statusChanged.body)).toEqual(keysOf(fixture('conversation_status_changed.resolved.json')));
      await until('message_created', () => hook.received.find((r) => r.body.event === 'message_created'));
      expect([...new Set(hook.received.map((r) => r.body.event))].sort()).toEqual(['conversation_status_changed', 'message_created']);
      const ts = String(statusChanged.headers['x-chatwoot-timestamp']);
      expect(statusChanged.headers['x-chatwoot-signature']).toBe(`sha256=${createHmac('sha256', 'acct').update(`${ts}.${statusChanged.raw}`).digest('hex')}`);
      expect(double.webhookDeliveries().every((d) => d.url === hook.url && d.status === 200)).toBe(true);
    } finally {
      await hook.close();
    }
  });

  it('PATCH and DELETE fire message_updated; a PATCH that changes nothing fires nothing', async () => {
    const hook = await receiver();
    try {
      await double.close();
      await fresh({}, { webhookUrl: hook.url });
      const { conversationId } = await seedConversation();
      const m = double.createAgentMessage(accountId, conversationId, { content: 'oi' });
      await api('PATCH', `/conversations/${conversationId}/messages/${m.id}`, { status: 'read' });
      await api('PATCH', `/conversations/${conversationId}/messages/${m.id}`, { status: 'delivered' });
      await api('DELETE', `/conversations/${conversationId}/messages/${m.id}`);
      const updates = await until('two updates', () => {
        const u = hook.received.filter((r) => r.body.event === 'message_updated');
        return u.length >= 2 ? u : undefined;
      });
      await double.close();
      await fresh();
      expect(hook.received.filter((r) => r.body.event === 'message_updated')).toHaveLength(2);
      expect(updates[1]!.body).toMatchObject({ id: m.id, content: 'This message was deleted', content_attributes: { deleted: true } });
    } finally {
      await hook.close();
    }
  });

  it('a failing inbox webhook marks the message failed with external_error, which fires message_updated', async () => {
    const hook = await receiver(503);
    try {
      await double.close();
      await fresh({}, { webhookUrl: hook.url });
      const { conversationId } = await seedConversation();
      const msg = double.createAgentMessage(accountId, conversationId, { content: 'oi' });
      await until('the failure', () => msg.status === 'failed');
      expect(msg.content_attributes.external_error).toBe('503 Service Unavailable');
      await until('message_updated', () => double.webhookDeliveries().some((d) => d.event === 'message_updated'));
      expect(double.webhookDeliveries().filter((d) => d.event === 'message_created')).toEqual([{ url: hook.url, event: 'message_created', status: 503 }]);
    } finally {
      await hook.close();
    }
  });

  it('webhooksEnabled: false sends nothing', async () => {
    const hook = await receiver();
    try {
      await double.close();
      await fresh({ webhooksEnabled: false }, { webhookUrl: hook.url });
      const { conversationId } = await seedConversation();
      const msg = double.createAgentMessage(accountId, conversationId, { content: 'oi' });
      await double.close();
      await fresh();
      expect(hook.received).toEqual([]);
      expect(msg.status).toBe('sent');
    } finally {
      await hook.close();
    }
  });
});

describe('tokens and the profile', () => {
  async function profile(token: string): Promise<Answer> {
    const res = await fetch(`${double.url}/api/v1/profile`, { headers: { api_access_token: token } });
    return { status: res.status, body: await res.json(), headers: res.headers };
  }

  it('the main token: its user, administrator of every account, its own token in access_token', async () => {
    const second = double.addAccount().id;
    const r = await profile(double.token);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: 1, email: 'api@ponte.invalid', access_token: double.token, role: 'administrator', type: 'user' });
    expect((r.body as { accounts: unknown[] }).accounts).toEqual([
      expect.objectContaining({ id: accountId, role: 'administrator', status: 'active' }),
      expect.objectContaining({ id: second, role: 'administrator', status: 'active' }),
    ]);
    expect(double.violations).toEqual([]);
  });

  it('another user’s token: its own roles, only in its accounts; on other routes a violation', async () => {
    const second = double.addAccount().id;
    const token = double.addUserToken({ name: 'Agente', email: 'agente@loja.com', roles: { [second]: 'agent' } });
    const r = await profile(token);
    expect(r.body).toMatchObject({ email: 'agente@loja.com', role: 'agent', accounts: [{ id: second, role: 'agent' }] });
    expect(double.violations).toEqual([]);
    expect((await api('GET', '/inboxes', undefined, token)).status).toBe(401);
    expect(double.violations).toHaveLength(1);
  });

  it('an agent bot’s token: the bots’ 401 on the profile and on contacts', async () => {
    const token = double.addAgentBotToken();
    expect(await profile(token)).toMatchObject({ status: 401, body: { error: 'Access to this endpoint is not authorized for bots' } });
    expect(await api('GET', '/contacts/1', undefined, token)).toMatchObject({ status: 401, body: { error: 'Access to this endpoint is not authorized for bots' } });
    expect(double.violations).toEqual([]);
  });

  it('refuseTokens: every token gets 401 Invalid Access Token until it is undone', async () => {
    const undo = double.refuseTokens();
    expect(await profile(double.token)).toMatchObject({ status: 401, body: { error: 'Invalid Access Token' } });
    undo();
    expect((await profile(double.token)).status).toBe(200);
  });
});
