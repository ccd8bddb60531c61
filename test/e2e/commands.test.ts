/**
 * The erga command end to end: the Chatwoot double posts signed account
 * webhooks to the daemon as Chatwoot does; the daemon (primary, workers,
 * sandbox driver) answers in the command's conversation.
 */
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsQRImport from 'jsqr';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, api, type Daemon, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { deleteKeys, randomPrefix, testRedis, testRedisUrl } from '../support/redis.js';

type QrDecoder = (data: Uint8ClampedArray, width: number, height: number) => { data: string } | null;
// jsqr is CommonJS with a default export.
const jsQR = ((jsQRImport as unknown as { default?: QrDecoder }).default ?? (jsQRImport as unknown as QrDecoder));

const SECRET = 'e2e-webhook-secret-0123456789';
const SIGNING = 'account-webhook-signing-secret';
const OPERATOR = '+5521998765432';

describe('the erga command, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  let prefix: string;
  let accountId: number;
  let commandInbox: number;
  let ponteInbox: number;

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    commandInbox = double.addInbox({ accountId, name: 'Central Ponte' }).id;
    ponteInbox = double.addInbox({ accountId, name: 'WhatsApp Vendas' }).id;
    sessions = await mkdtemp(join(tmpdir(), 'ponte-e2e-cmd-'));
    prefix = randomPrefix();
    daemon = await startDaemon({
      CHATWOOT_BASE_URL: double.url,
      CHATWOOT_API_ACCESS_TOKEN: double.token,
      WEBHOOK_SECRET: SECRET,
      CHATWOOT_ACCOUNT_WEBHOOK_SECRET: SIGNING,
      WEBHOOK_AUTHORIZED_PHONE_NUMBERS: '+55 (21) 99876-5432, +5511900001111',
      DEFAULT_RELAY_CHATWOOT_INBOX_ID: String(commandInbox),
      ADMIN_TOKEN: ADMIN,
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: prefix,
      MAX_WORKERS: '2',
      WHATSAPP_DRIVER: 'sandbox',
      BAILEYS_AUTH_SESSIONS_PARENT_DIR: sessions,
      SANDBOX_QR_INTERVAL_MS: '60000',
      SERVER_LOG_LEVEL: process.env.PONTE_TEST_LOG === '1' ? 'debug' : 'error',
      CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'error',
    });
    double.addAccountWebhook({ accountId, url: `${daemon.base}/webhook/comando?token=${SECRET}`, subscriptions: ['message_created'], secret: SIGNING });
  }, 60_000);

  afterAll(async () => {
    if (daemon.proc.exitCode === null) {
      daemon.proc.kill('SIGTERM');
      await daemon.exited;
    }
    await double.close();
    const redis = testRedis();
    await deleteKeys(redis, prefix);
    await redis.quit();
    await rm(sessions, { recursive: true, force: true });
  });

  async function cw(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${double.url}/api/v1/accounts/${accountId}${path}`, {
      method,
      headers: { api_access_token: double.token, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as Record<string, unknown>;
  }

  async function conversationWith(phone: string, inboxId = commandInbox): Promise<number> {
    const sourceId = `src-${inboxId}-${phone}`;
    let contactId = double.contacts(accountId).find((c) => c.phone_number === phone)?.id;
    if (contactId === undefined) {
      const c = (await cw('POST', '/contacts', { inbox_id: inboxId, name: `Operador ${phone}`, phone_number: phone, source_id: sourceId })) as { payload: { contact: { id: number } } };
      contactId = c.payload.contact.id;
    } else {
      await cw('POST', `/contacts/${contactId}/contact_inboxes`, { inbox_id: inboxId, source_id: sourceId });
    }
    const conv = (await cw('POST', '/conversations', { source_id: sourceId, inbox_id: inboxId, contact_id: contactId })) as { id: number };
    return conv.id;
  }

  /** Writes a message as Chatwoot would create it (the double posts the webhook). */
  async function write(conversationId: number, content: string, o: { message_type?: 'incoming' | 'outgoing'; private?: boolean } = {}): Promise<number> {
    const m = (await cw('POST', `/conversations/${conversationId}/messages`, { content, message_type: o.message_type ?? 'incoming', private: o.private ?? false })) as { id: number };
    return m.id;
  }

  const replies = (conversationId: number): CwMessageRecord[] => double.messages(accountId, conversationId).filter((m) => m.message_type === 'outgoing' && m.sender?.type === 'user');
  const replyMatching = (conversationId: number, re: RegExp) => until(`a reply matching ${re}`, () => Promise.resolve(replies(conversationId).find((m) => re.test(m.content ?? ''))), daemon);

  it('links a number from a conversation: QR image, scan, link message, status, stop', async () => {
    const conv = await conversationWith(OPERATOR);
    const key = `${accountId}-${ponteInbox}`;
    await write(conv, `ERGA ${ponteInbox} ${accountId}`);

    const qrMessage = await until('the QR image', () => Promise.resolve(replies(conv).find((m) => m.attachments.length > 0)), daemon);
    expect(qrMessage.content).toMatch(/attempt 1 of 5/);
    const attachment = qrMessage.attachments[0]!;
    expect(attachment).toMatchObject({ file_type: 'image', content_type: 'image/png' });
    const png = PNG.sync.read(attachment.data);
    const decoded = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
    const shown = (await api(daemon, 'GET', `/admin/instances/${key}/qr?format=text`)).json.qr;
    expect(decoded?.data).toBe(shown);

    await api(daemon, 'POST', `/sandbox/instances/${key}/scan`, { phone: '5511955554444' });
    const linked = await replyMatching(conv, /Linked: \+5511955554444/);
    expect(linked.content).toContain(`/webhook/chatwoot/${key}`);
    expect(linked.content).not.toContain(SECRET);

    await write(conv, 'erga status');
    const status = await replyMatching(conv, /instance\(s\)/);
    expect(status.content).toMatch(new RegExp(`${key}: inbox ${ponteInbox}, account ${accountId}, open, \\+5511955554444`));

    await write(conv, `erga stop ${ponteInbox}`);
    await replyMatching(conv, new RegExp(`Instance ${key} stopped`));
    await until('stopped', async () => (await api(daemon, 'GET', '/admin/instances')).json.instances !== undefined && ((await api(daemon, 'GET', '/admin/instances')).json.instances as Array<{ instanceKey: string; desired: string }>).find((i) => i.instanceKey === key)?.desired === 'stopped');

    await write(conv, 'erga 12');
    const malformed = await replyMatching(conv, /expected/);
    expect(malformed.content).toContain('erga <inbox_id> <account_id>');
  }, 60_000);

  it('ignores commands it must not act on, and refuses unauthenticated requests', async () => {
    const intruder = await conversationWith('+5511977776666');
    const operator = await conversationWith('+5511900001111');
    const other = double.addInbox({ accountId, name: 'Site' }).id;
    const elsewhere = await conversationWith('+5521998765432', other);

    await write(intruder, `erga ${ponteInbox} ${accountId}`); // unauthorized phone
    await write(operator, `erga status`, { private: true }); // private note
    await write(operator, `erga status`, { message_type: 'outgoing' }); // outgoing
    await write(elsewhere, `erga status`); // authorized phone, but not the command inbox

    // Unsigned, wrongly signed, stale, and token-less requests: 401, nothing happens.
    const body = JSON.stringify({ event: 'message_created', id: 999_999, content: 'erga status', message_type: 'incoming', private: false, account: { id: accountId }, inbox: { id: commandInbox }, conversation: { id: operator }, sender: { phone_number: '+5511900001111' } });
    const ts = String(Math.floor(Date.now() / 1000));
    const sign = (t: string, secret = SIGNING) => `sha256=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
    const post = (url: string, headers: Record<string, string>) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }).then((r) => r.status);
    const url = `${daemon.base}/webhook/comando?token=${SECRET}`;
    expect(await post(url, {})).toBe(401);
    expect(await post(url, { 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': sign(ts, 'wrong') })).toBe(401);
    expect(await post(url, { 'x-chatwoot-timestamp': '1000', 'x-chatwoot-signature': sign('1000') })).toBe(401);
    expect(await post(`${daemon.base}/webhook/comando`, { 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': sign(ts) })).toBe(401);
    // A correctly signed delivery, then the same delivery again: acted on once.
    expect(await post(url, { 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': sign(ts) })).toBe(200);
    expect(await post(url, { 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': sign(ts) })).toBe(200);

    // A marker command from the operator: once its reply is there, the earlier ones were handled.
    await write(operator, 'erga help');
    await replyMatching(operator, /erga status: every instance/);
    await until('the signed status reply', () => Promise.resolve(replies(operator).filter((m) => /instance\(s\)|No instances/.test(m.content ?? '')).length >= 1), daemon);
    expect(replies(operator).filter((m) => /instance\(s\)|No instances/.test(m.content ?? ''))).toHaveLength(1);
    expect(replies(intruder)).toEqual([]);
    expect(replies(elsewhere)).toEqual([]);
    expect((await api(daemon, 'GET', '/admin/instances')).json.instances).toHaveLength(1);
  }, 60_000);
});
