/**
 * `erga new` and `POST /admin/instances {name, account}` end to end: the
 * daemon creates an API inbox in the Chatwoot double, points its webhook at
 * itself with the secret, reads its signing secret, makes the author a
 * member and links a sandbox number to it; from then on WhatsApp messages
 * reach the new inbox and agent replies there reach WhatsApp, with no
 * manual step. Without PUBLIC_URL it refuses, saying what to set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/redis/redis-server.js';
import { api, type Daemon, startDaemon, stopDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { daemonEnv, SECRET, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';

const SIGNING = 'account-webhook-signing-secret';

interface OutboxEntry {
  to: string;
  type: string;
  text?: string;
}

describe('a new inbox from a command, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  let prefix: string;
  let env: Record<string, string>;
  let publicUrl: string;
  let port: number;
  let accountId: number;
  let site: number;
  let ana: number;

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    site = double.addInbox({ accountId, name: 'Site' }).id;
    ana = double.addUser({ name: 'Ana', email: 'ana@example.com' }).id;
    sessions = await tempDir('ponte-e2e-new-');
    prefix = randomPrefix();
    port = await freePort();
    // Chatwoot reaches Ponte here: the URL the new inboxes' webhooks are set to.
    publicUrl = `http://127.0.0.1:${port}`;
    env = daemonEnv(
      { double, sessions, prefix },
      { CHATWOOT_ACCOUNT_WEBHOOK_SECRET: SIGNING, WEBHOOK_AUTHORIZED_AGENT_EMAILS: 'ana@example.com', PUBLIC_URL: publicUrl, MAX_WORKERS: '1', SHUTDOWN_TIMEOUT_MS: '8000' },
    );
    daemon = await startDaemon(env, { port });
    double.addAccountWebhook({ accountId, url: `${daemon.base}/webhook/comando?token=${SECRET}`, subscriptions: ['message_created'], secret: SIGNING });
  }, 90_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  /** A conversation in the website inbox where Ana writes her private notes. */
  async function commandConversation(tag: string): Promise<number> {
    const headers = { api_access_token: double.token, 'content-type': 'application/json' };
    const base = `${double.url}/api/v1/accounts/${accountId}`;
    const c = (await (await fetch(`${base}/contacts`, { method: 'POST', headers, body: JSON.stringify({ inbox_id: site, source_id: tag, name: `Visitante ${tag}` }) })).json()) as { payload: { contact: { id: number } } };
    const conv = (await (await fetch(`${base}/conversations`, { method: 'POST', headers, body: JSON.stringify({ source_id: tag, inbox_id: site, contact_id: c.payload.contact.id }) })).json()) as { id: number };
    return conv.id;
  }

  const replies = (conversationId: number): CwMessageRecord[] => double.messages(accountId, conversationId).filter((m) => (m.source_id ?? '').startsWith('PONTE:'));
  const replyMatching = (conversationId: number, re: RegExp) => until(`a reply matching ${re}`, () => Promise.resolve(replies(conversationId).find((m) => re.test(m.content ?? ''))), daemon);
  const inboxNamed = (name: string) => double.inboxes(accountId).find((i) => i.name === name);

  it('erga new Loja: the inbox is created pointed at Ponte, its secret known, Ana a member; the QR, the link, then messages both ways with no manual step', async () => {
    const conv = await commandConversation('cmd-new');
    double.createAgentMessage(accountId, conv, { content: `erga new Loja ${accountId}`, private: true, userId: ana });

    const ready = await replyMatching(conv, /Inbox "Loja" \(id \d+\) is ready/);
    const inbox = inboxNamed('Loja')!;
    const key = `${accountId}-${inbox.id}`;
    expect(inbox.webhook_url).toBe(`${publicUrl}/webhook/chatwoot/${key}?token=${SECRET}`);
    expect(inbox.members).toEqual([ana]);
    expect(ready.private).toBe(true);
    expect(ready.content).toContain('ana@example.com is a member');
    expect(ready.content).toContain('which Ponte verifies');

    const qr = await until('the QR image', () => Promise.resolve(replies(conv).find((m) => m.attachments.length > 0)), daemon);
    expect(qr.content).toContain(`QR code for ${key} (attempt 1 of 5)`);
    expect(qr.attachments[0]).toMatchObject({ file_type: 'image', content_type: 'image/png' });

    // Ponte knows the inbox's signing secret: an unsigned delivery with the right token is refused.
    const unsigned = await fetch(`${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'message_created', inbox: { id: inbox.id } }) });
    expect(unsigned.status).toBe(401);
    expect(await unsigned.text()).toMatch(/unsigned webhook/);

    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/scan`, { phone: '5511955554444' })).status).toBe(200);
    const linked = await replyMatching(conv, /Linked: \+5511955554444/);
    expect(linked.content).toContain(`instance ${key}`);
    expect(linked.content).not.toMatch(/Set the inbox webhook URL/);
    expect(linked.content).not.toContain(SECRET);

    // A customer writes to the new number: the message lands in the new inbox.
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: '5521987650000', pushName: 'Cliente', text: 'Oi, vocês abrem sábado?', id: 'NEW1' })).status).toBe(201);
    const customer = await until('the relayed message', () => Promise.resolve(double.conversations(accountId).find((c) => c.inbox_id === inbox.id && double.messages(accountId, c.id).some((m) => m.source_id === 'WAID:NEW1'))), daemon);
    // An agent answers in Chatwoot: the signed inbox webhook Ponte set carries it to WhatsApp.
    double.createAgentMessage(accountId, customer.id, { content: 'Abrimos sim, das 9h às 13h.' });
    const sent = await until(
      'the reply on WhatsApp',
      async () => ((await api(daemon, 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[] | undefined)?.find((e) => e.to === '5521987650000@s.whatsapp.net' && e.text === 'Abrimos sim, das 9h às 13h.'),
      daemon,
    );
    expect(sent.type).toBe('text');
    expect(double.webhookDeliveries().filter((d) => d.url === inbox.webhook_url).every((d) => d.status === 200)).toBe(true);
    expect(double.violations).toEqual([]);
  }, 90_000);

  it('POST /admin/instances {name, account}: the inbox is created and the token’s user is its member; a token that is no administrator is told so', async () => {
    const r = await api(daemon, 'POST', '/admin/instances', { name: 'Vendas Centro', account: accountId });
    expect(r.status).toBe(201);
    const inbox = inboxNamed('Vendas Centro')!;
    const key = `${accountId}-${inbox.id}`;
    expect(r.json).toMatchObject({ instance: key, qr: `/admin/instances/${key}/qr`, inbox: { id: inbox.id, name: 'Vendas Centro', webhookSet: true, secretKnown: true, member: 1 } });
    expect(JSON.stringify(r.json)).not.toContain(SECRET);
    expect(inbox.webhook_url).toBe(`${publicUrl}/webhook/chatwoot/${key}?token=${SECRET}`);
    expect(inbox.members).toEqual([1]);
    await until('a QR', async () => (await api(daemon, 'GET', `/admin/instances/${key}/qr?format=text`)).status === 200, daemon);
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/scan`, { phone: '5511944443333' })).status).toBe(200);
    await until(`${key} open`, async () => ((await api(daemon, 'GET', '/admin/instances')).json.instances as Array<{ instanceKey: string; status?: { state?: string } }>).find((i) => i.instanceKey === key)?.status?.state === 'open', daemon);

    expect((await api(daemon, 'POST', '/admin/instances', { name: 'Dois', inbox: inbox.id, account: accountId })).status).toBe(400);
    const before = double.inboxes(accountId).length;
    double.setTokenRole(accountId, 'agent');
    try {
      const refused = await api(daemon, 'POST', '/admin/instances', { name: 'Sem Direito', account: accountId });
      expect(refused).toMatchObject({ status: 502, json: { error: 'chatwoot_refused', message: expect.stringMatching(/is an agent of account \d+, not an administrator/) as unknown } });
      const conv = await commandConversation('cmd-agent');
      double.createAgentMessage(accountId, conv, { content: `erga new Sem Direito ${accountId}`, private: true, userId: ana });
      await replyMatching(conv, /not an administrator: only administrators create inboxes/);
    } finally {
      double.setTokenRole(accountId, 'administrator');
    }
    expect(double.inboxes(accountId)).toHaveLength(before);
  }, 90_000);

  it('without PUBLIC_URL, erga new and the admin route refuse, saying what to set, and create nothing', async () => {
    expect(await stopDaemon(daemon)).toBe(0);
    const { PUBLIC_URL: _unset, ...withoutUrl } = env;
    daemon = await startDaemon(withoutUrl, { port });
    const before = double.inboxes(accountId).length;
    const conv = await commandConversation('cmd-nourl');
    double.createAgentMessage(accountId, conv, { content: `erga new Filial ${accountId}`, private: true, userId: ana });
    const refusal = await replyMatching(conv, /needs PUBLIC_URL/);
    expect(refusal.content).toContain('set it in .env (e.g. PUBLIC_URL=https://ponte.example.com) and restart Ponte');
    const r = await api(daemon, 'POST', '/admin/instances', { name: 'Filial', account: accountId });
    expect(r).toMatchObject({ status: 409, json: { error: 'not_configured', message: expect.stringContaining('needs PUBLIC_URL') as unknown } });
    expect(double.inboxes(accountId)).toHaveLength(before);
  }, 90_000);
});
