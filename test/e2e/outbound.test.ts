/**
 * Agent replies end to end: the Chatwoot double posts the inbox webhook
 * (signed with the inbox's secret) to the daemon, which sends on the
 * sandbox WhatsApp account; the outbox shows what left, and the double
 * shows the ticks Ponte reported.
 */
import { createHash, createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, type Daemon, instanceStatus, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { daemonEnv, linkSandbox, scanSandbox, SECRET, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';
import type { OutboxEntry } from '../../src/sandbox/schemas.js';

const INBOX_SECRET = 'inbox-signing-secret-abc';

describe('agent replies, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let accountId: number;
  let inboxId: number;
  let key: string;

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    sessions = await tempDir('ponte-e2e-out-');
    // The inbox is created before the daemon so its webhook URL can be set once the port is known.
    daemon = await startDaemon(daemonEnv({ double, sessions, prefix }, { MAX_WORKERS: '2', OUTBOUND_AGENT_SIGNATURE: 'true' }));
    inboxId = double.addInbox({ accountId, name: 'WhatsApp Vendas', webhookUrl: `${daemon.base}/webhook/chatwoot/${accountId}-1?token=${SECRET}`, secret: INBOX_SECRET }).id;
    expect(inboxId).toBe(1);
    key = await linkSandbox(daemon, { account: accountId, inbox: inboxId, phone: '5511933332222' });
  }, 60_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  const outbox = async () => ((await api(daemon, 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[]) ?? [];

  async function inboundChat(from: string, text: string, id: string): Promise<number> {
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from, pushName: 'Cliente', text, id })).status).toBe(201);
    return until('the relayed message', () =>
      Promise.resolve(double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === `WAID:${id}`))?.id),
    );
  }

  async function agentMultipart(conversationId: number, content: string, files: Array<{ name: string; type: string; data: Buffer }>): Promise<number> {
    const form = new FormData();
    form.append('content', content);
    form.append('message_type', 'outgoing');
    for (const f of files) form.append('attachments[]', new Blob([new Uint8Array(f.data)], { type: f.type }), f.name);
    const res = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conversationId}/messages`, { method: 'POST', headers: { api_access_token: double.token }, body: form });
    return ((await res.json()) as { id: number }).id;
  }

  it('sends text, replies and every attachment kind as expected, with ticks sent → delivered → read', async () => {
    const conv = await inboundChat('5511911112222', 'Oi, tem o tênis azul?', 'IN1');
    const agent = double.createAgentMessage(accountId, conv, { content: 'Temos **sim**! Posso _reservar_?' });
    const text = await until('the text in the outbox', async () => (await outbox()).find((e) => e.text?.includes('Temos')));
    expect(text).toMatchObject({ to: '5511911112222@s.whatsapp.net', type: 'text', text: '*Ponte API:*\nTemos *sim*! Posso _reservar_?' });
    await until('sent', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.id === agent.id)?.status === 'sent'));
    // The agent answered: the customer's message got its blue ticks on WhatsApp.
    await until('the customer message marked read', async () => ((await api(daemon, 'GET', `/sandbox/instances/${key}/read`)).json.ids as string[]).includes('IN1'));

    await api(daemon, 'POST', `/sandbox/instances/${key}/receipts`, { id: text.id, status: 'delivered' });
    await until('delivered', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.id === agent.id)?.status === 'delivered'));
    await api(daemon, 'POST', `/sandbox/instances/${key}/receipts`, { id: text.id, status: 'read' });
    await until('read', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.id === agent.id)?.status === 'read'));

    // A reply to the customer's message quotes it on WhatsApp.
    const inbound = double.messages(accountId, conv).find((m) => m.source_id === 'WAID:IN1')!;
    await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conv}/messages`, {
      method: 'POST',
      headers: { api_access_token: double.token, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'Sobre isso:', message_type: 'outgoing', content_attributes: { in_reply_to: inbound.id } }),
    });
    const reply = await until('the reply', async () => (await outbox()).find((e) => e.text?.includes('Sobre isso')));
    expect(reply.quotedId).toBe('IN1');

    // Attachments: image with caption, a voice note, a PDF with its name.
    const jpeg = Buffer.from('ffd8ffe000104a46494600010100000100010000ffd9', 'hex');
    const ogg = Buffer.from('4f676753000200000000', 'hex');
    const pdf = Buffer.from('%PDF-1.4\n%%EOF\n');
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    await agentMultipart(conv, 'Foto do produto', [{ name: 'tenis-azul.jpg', type: 'image/jpeg', data: jpeg }]);
    await agentMultipart(conv, '', [{ name: 'audio.ogg', type: 'audio/ogg', data: ogg }]);
    await agentMultipart(conv, 'Segue o boleto', [{ name: 'boleto-123.pdf', type: 'application/pdf', data: pdf }]);
    const media = await until('three attachments', async () => {
      const m = (await outbox()).filter((e) => e.mediaSha256);
      return m.length >= 3 ? m : undefined;
    });
    expect(media.map((m) => [m.type, m.mediaSha256, m.caption ?? null, m.fileName ?? null])).toEqual([
      ['image', sha(jpeg), '*Ponte API:*\nFoto do produto', null],
      ['ptt', sha(ogg), null, null],
      ['document', sha(pdf), '*Ponte API:*\nSegue o boleto', 'boleto-123.pdf'],
    ]);
  }, 60_000);

  it('sends nothing twice, nothing private, nothing relayed, nothing unauthenticated', async () => {
    const conv = await inboundChat('5511922223333', 'Bom dia', 'IN2');
    const before = (await outbox()).length;
    double.createAgentMessage(accountId, conv, { content: 'nota interna', private: true });
    // An unauthenticated and a wrongly signed delivery of an agent message.
    const body = JSON.stringify({ event: 'message_created', id: 987_654, content: 'forjada', message_type: 'outgoing', private: false, account: { id: accountId }, conversation: { id: conv, contact_inbox: { source_id: '5511922223333@s.whatsapp.net' } } });
    const ts = String(Math.floor(Date.now() / 1000));
    const post = (url: string, headers: Record<string, string>) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }).then((r) => r.status);
    expect(await post(`${daemon.base}/webhook/chatwoot/${key}`, {})).toBe(401);
    expect(await post(`${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`, { 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': `sha256=${createHmac('sha256', 'wrong').update(`${ts}.${body}`).digest('hex')}` })).toBe(401);
    expect(await post(`${daemon.base}/webhook/chatwoot/9-9?token=${SECRET}`, {})).toBe(404);

    // The same agent message delivered twice (Chatwoot duplicates happen): sent once.
    const agent = double.createAgentMessage(accountId, conv, { content: 'uma vez só' });
    const signed = (payload: string) => {
      const t = String(Math.floor(Date.now() / 1000));
      return { 'x-chatwoot-timestamp': t, 'x-chatwoot-signature': `sha256=${createHmac('sha256', INBOX_SECRET).update(`${t}.${payload}`).digest('hex')}` };
    };
    const replay = JSON.stringify({ event: 'message_created', id: agent.id, content: 'uma vez só', message_type: 'outgoing', private: false, source_id: null, content_attributes: {}, account: { id: accountId }, inbox: { id: inboxId }, conversation: { id: conv, contact_inbox: { source_id: '5511922223333@s.whatsapp.net' }, meta: { sender: {} } }, sender: { type: 'user', name: 'Ponte API' } });
    await until('the first send', async () => (await outbox()).some((e) => e.text?.endsWith('uma vez só')));
    expect(await fetch(`${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`, { method: 'POST', headers: { 'content-type': 'application/json', ...signed(replay) }, body: replay }).then((r) => r.status)).toBe(200);

    // A marker message: once it is out, everything before it was handled.
    double.createAgentMessage(accountId, conv, { content: 'marcador' });
    await until('the marker', async () => (await outbox()).some((e) => e.text?.endsWith('marcador')));
    const after = (await outbox()).slice(before);
    expect(after.filter((e) => e.text?.endsWith('uma vez só'))).toHaveLength(1);
    expect(after.some((e) => e.text?.includes('nota interna') || e.text?.includes('forjada') || e.text?.includes('Bom dia'))).toBe(false);
  }, 60_000);

  it('fetches attachments only from Chatwoot: another host fails the message with a plain reason, a malformed link too', async () => {
    const conv = await inboundChat('5511966667777', 'Manda o arquivo?', 'IN5');
    // An internal service on this host, the kind a forged data_url aims at.
    let hits = 0;
    const internal = createServer((_req, res) => {
      hits += 1;
      res.end('internal secret');
    });
    await new Promise<void>((r) => internal.listen(0, '127.0.0.1', r));
    const port = (internal.address() as AddressInfo).port;
    const signed = (payload: string) => {
      const t = String(Math.floor(Date.now() / 1000));
      return { 'content-type': 'application/json', 'x-chatwoot-timestamp': t, 'x-chatwoot-signature': `sha256=${createHmac('sha256', INBOX_SECRET).update(`${t}.${payload}`).digest('hex')}` };
    };
    // Agent messages made while the inbox webhook is off, then announced with attachment links of our choosing.
    double.setInboxWebhook(inboxId, '');
    const viaInternal = double.createAgentMessage(accountId, conv, { content: 'segue' });
    const malformed = double.createAgentMessage(accountId, conv, { content: 'segue também' });
    double.setInboxWebhook(inboxId, `${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`);
    const announce = (id: number, dataUrl: string) =>
      JSON.stringify({
        event: 'message_created', id, content: 'segue', message_type: 'outgoing', private: false, source_id: null, content_attributes: {}, account: { id: accountId }, inbox: { id: inboxId },
        conversation: { id: conv, inbox_id: inboxId, contact_inbox: { source_id: '5511966667777@s.whatsapp.net' }, meta: { sender: {} } }, sender: { type: 'user', name: 'Ponte API' },
        attachments: [{ id: 1, message_id: id, file_type: 'file', extension: 'pdf', data_url: dataUrl, file_size: 15 }],
      });
    for (const [id, url] of [[viaInternal.id, `http://127.0.0.1:${port}/admin/export.pdf`], [malformed.id, 'http://[::1']] as const) {
      const body = announce(id, url);
      expect((await fetch(`${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`, { method: 'POST', headers: signed(body), body })).status).toBe(200);
    }
    const failed = await until('both failed', () => {
      const f = double.messages(accountId, conv).filter((m) => (m.id === viaInternal.id || m.id === malformed.id) && m.status === 'failed');
      return Promise.resolve(f.length === 2 ? f : undefined);
    });
    internal.close();
    expect(hits).toBe(0);
    for (const m of failed) {
      const reason = String(m.content_attributes.external_error);
      expect(reason).toMatch(/attachment/);
      expect(reason).not.toMatch(/127\.0\.0\.1|::1|localhost|internal secret/);
      expect(reason).not.toContain(String(port));
    }
    expect((await outbox()).some((e) => e.text?.endsWith('segue') || e.caption?.endsWith('segue'))).toBe(false);
  }, 60_000);

  it('ticks never go backwards: 20 replies over 5 conversations, receipts in any order, every update announced', async () => {
    const convs: number[] = [];
    for (let c = 0; c < 5; c++) convs.push(await inboundChat(`551197777000${c}`, `oi ${c}`, `TICK${c}`));
    const replies: Array<{ id: number; conversation_id: number }> = [];
    for (let i = 0; i < 20; i++) replies.push(double.createAgentMessage(accountId, convs[i % 5]!, { content: `resposta ${i}` }));
    // As soon as each reply is on WhatsApp its receipts come back: delivered then read, or read first.
    const seen = new Set<string>();
    await until('20 replies sent and acknowledged', async () => {
      for (const e of await outbox()) {
        const i = replies.findIndex((r) => e.text === `*Ponte API:*\nresposta ${replies.indexOf(r)}`);
        if (i < 0 || seen.has(e.id)) continue;
        seen.add(e.id);
        const order = i % 3 === 0 ? ['read', 'delivered'] : ['delivered', 'read'];
        for (const status of order) await api(daemon, 'POST', `/sandbox/instances/${key}/receipts`, { id: e.id, status });
      }
      return seen.size >= 20 ? true : undefined;
    });
    const final = await until('every reply read', () => {
      const ms = replies.map((r) => double.messages(accountId, r.conversation_id).find((m) => m.id === r.id)!);
      return Promise.resolve(ms.every((m) => m.status === 'read') ? ms : undefined);
    });
    const rank = { failed: 0, sent: 1, delivered: 2, read: 3 } as const;
    for (const m of final) {
      const ranks = m.statusHistory.map((st) => rank[st]);
      expect(ranks, `message ${m.id}: ${m.statusHistory.join(' → ')}`).toEqual([...ranks].sort((a, b) => a - b));
    }
    // Sent once each, and Chatwoot announced every update to the inbox webhook.
    const texts = (await outbox()).map((e) => e.text ?? '');
    for (let i = 0; i < 20; i++) expect(texts.filter((t) => t === `*Ponte API:*\nresposta ${i}`)).toHaveLength(1);
    expect(double.webhookDeliveries().filter((d) => d.event === 'message_updated' && d.url.includes(`/webhook/chatwoot/${key}`)).length).toBeGreaterThanOrEqual(40);
  }, 90_000);

  it('two copies of one webhook arriving together send once and hold up nothing', async () => {
    const conv = await inboundChat('5511977771111', 'oi', 'DUP1');
    double.setInboxWebhook(inboxId, '');
    const agent = double.createAgentMessage(accountId, conv, { content: 'uma só vez' });
    double.setInboxWebhook(inboxId, `${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`);
    const body = JSON.stringify({
      event: 'message_created', id: agent.id, content: 'uma só vez', message_type: 'outgoing', private: false, source_id: null, content_attributes: {}, account: { id: accountId }, inbox: { id: inboxId },
      conversation: { id: conv, inbox_id: inboxId, contact_inbox: { source_id: '5511977771111@s.whatsapp.net' }, meta: { sender: {} } }, sender: { type: 'user', name: 'Ponte API' },
    });
    const t = String(Math.floor(Date.now() / 1000));
    const headers = { 'content-type': 'application/json', 'x-chatwoot-timestamp': t, 'x-chatwoot-signature': `sha256=${createHmac('sha256', INBOX_SECRET).update(`${t}.${body}`).digest('hex')}` };
    const statuses = await Promise.all([1, 2, 3].map(() => fetch(`${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`, { method: 'POST', headers, body }).then((r) => r.status)));
    expect(statuses).toEqual([200, 200, 200]);
    // The next message of the same conversation follows at once.
    double.createAgentMessage(accountId, conv, { content: 'logo depois' });
    await until('the next message', async () => (await outbox()).some((e) => e.text?.endsWith('logo depois')));
    const texts = (await outbox()).map((e) => e.text ?? '');
    expect(texts.filter((x) => x.endsWith('uma só vez'))).toHaveLength(1);
    expect(texts.findIndex((x) => x.endsWith('uma só vez'))).toBeLessThan(texts.findIndex((x) => x.endsWith('logo depois')));
  }, 60_000);

  it('an agent reply marks read every earlier message of the person, also after their addressing moved to a LID', async () => {
    const conv = await inboundChat('5511977772222', 'primeira, pelo número', 'MR1');
    // The same person, now addressed by LID (with the number as the alternate): the same conversation.
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: '5511977772222', lid: true, pushName: 'Cliente', text: 'segunda, pelo LID', id: 'MR2' })).status).toBe(201);
    await until('the LID message in the same conversation', () => Promise.resolve(double.messages(accountId, conv).some((m) => m.source_id === 'WAID:MR2')));
    double.createAgentMessage(accountId, conv, { content: 'lido?' });
    const read = await until('both marked read', async () => {
      const ids = (await api(daemon, 'GET', `/sandbox/instances/${key}/read`)).json.ids as string[];
      return ids.includes('MR1') && ids.includes('MR2') ? ids : undefined;
    });
    expect(read.filter((id) => id === 'MR1' || id === 'MR2')).toHaveLength(2);
  }, 60_000);

  it('keeps each conversation in order while conversations proceed in parallel', async () => {
    const a = await inboundChat('5511955551111', 'oi A', 'INA');
    const b = await inboundChat('5511955552222', 'oi B', 'INB');
    for (let i = 0; i < 8; i++) {
      double.createAgentMessage(accountId, a, { content: `A${i}` });
      double.createAgentMessage(accountId, b, { content: `B${i}` });
    }
    const out = await until('16 burst messages', async () => {
      const o = (await outbox()).filter((e) => /\n[AB]\d$/.test(e.text ?? ''));
      return o.length >= 16 ? o : undefined;
    });
    const order = (chat: string) => out.filter((e) => e.to === `${chat}@s.whatsapp.net`).map((e) => e.text!.slice(-2));
    expect(order('5511955551111')).toEqual(['A0', 'A1', 'A2', 'A3', 'A4', 'A5', 'A6', 'A7']);
    expect(order('5511955552222')).toEqual(['B0', 'B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7']);
  }, 60_000);

  it('a failure is reported with a reason, a Retry sends once, a delete reaches WhatsApp, an agent-started conversation reaches the number', async () => {
    // Logged out: the agent message fails with a reason.
    const conv = await inboundChat('5511944445555', 'Olá', 'IN3');
    await api(daemon, 'POST', `/sandbox/instances/${key}/disconnect`, { reason: 'loggedOut' });
    await until('logged out', async () => (await instanceStatus(daemon, key))?.state === 'logged_out', daemon);
    const failed = double.createAgentMessage(accountId, conv, { content: 'não vai' });
    const record = await until('failed', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.id === failed.id && m.status === 'failed')));
    expect(String(record.content_attributes.external_error)).toMatch(/not connected \(logged out\)/);

    // Link again, then the agent presses Retry: sent once.
    await api(daemon, 'POST', `/admin/instances/${key}/start`);
    await scanSandbox(daemon, key, '5511933332222');
    const retry = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conv}/messages/${failed.id}/retry`, { method: 'POST', headers: { api_access_token: double.token } });
    expect(retry.status).toBe(200);
    const sent = await until('the retried message', async () => (await outbox()).find((e) => e.text?.endsWith('não vai')));
    await until('sent after retry', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.id === failed.id)?.status === 'sent'));
    expect((await outbox()).filter((e) => e.text?.endsWith('não vai'))).toHaveLength(1);
    // Chatwoot announced the Retry twice; the announcements of Ponte's own ticks afterwards send nothing either.
    await api(daemon, 'POST', `/sandbox/instances/${key}/receipts`, { id: sent.id, status: 'delivered' });
    await until('delivered after retry', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.id === failed.id)?.status === 'delivered'));
    const marker = double.createAgentMessage(accountId, conv, { content: 'marcador do retry' });
    await until('the marker after the retry', async () => (await outbox()).some((e) => e.text?.endsWith('marcador do retry')));
    expect((await outbox()).filter((e) => e.text?.endsWith('não vai'))).toHaveLength(1);
    expect(double.messages(accountId, conv).find((m) => m.id === failed.id)?.statusHistory).toEqual(['sent', 'failed', 'sent', 'delivered']);
    expect(marker.id).toBeGreaterThan(failed.id);

    // Delete for everyone.
    await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conv}/messages/${failed.id}`, { method: 'DELETE', headers: { api_access_token: double.token } });
    await until('deleted on WhatsApp', async () => (await outbox()).find((e) => e.id === sent.id)?.deleted === true);

    // A conversation an agent started: the contact's number, Brazilian form resolved.
    const c = (await (
      await fetch(`${double.url}/api/v1/accounts/${accountId}/contacts`, {
        method: 'POST',
        headers: { api_access_token: double.token, 'content-type': 'application/json' },
        body: JSON.stringify({ inbox_id: inboxId, name: 'Novo cliente', phone_number: '+5521988887777' }),
      })
    ).json()) as { payload: { contact: { id: number }; contact_inbox: { source_id: string } } };
    const started = (await (
      await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations`, {
        method: 'POST',
        headers: { api_access_token: double.token, 'content-type': 'application/json' },
        body: JSON.stringify({ source_id: c.payload.contact_inbox.source_id, inbox_id: inboxId, contact_id: c.payload.contact.id }),
      })
    ).json()) as { id: number };
    double.createAgentMessage(accountId, started.id, { content: 'Olá, tudo bem?' });
    const first = await until('the agent-started message', async () => (await outbox()).find((e) => e.text?.endsWith('Olá, tudo bem?')));
    expect(first.to).toBe('5521988887777@s.whatsapp.net');
  }, 90_000);
});
