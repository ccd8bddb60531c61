/**
 * A link under way is kept in Redis: a primary that restarts between the QR
 * and the link (a new CommandService, nothing in memory) still announces it,
 * once, in the command's conversation; the confirmation asks for the webhook
 * URL only when the inbox does not point at Ponte already.
 */
import { EventEmitter } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatwootClient, type ChatwootClient } from '../../src/chatwoot/client.js';
import type { WorkerEvent } from '../../src/cluster/ipc.js';
import { loadConfig } from '../../src/config/load.js';
import type { InstanceRecord } from '../../src/model/instance.js';
import { createLogger } from '../../src/observability/logger.js';
import { type CommandControlLike, CommandService } from '../../src/primary/commands/command-service.js';
import { PendingLinks, pendingLinkTtlMs } from '../../src/primary/commands/pending-links.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { until } from '../support/daemon.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const SECRET = 'pending-links-webhook-secret';
const redis = testRedis();
const prefix = randomPrefix();
const keys = new RedisKeys(prefix);
const log = createLogger({ level: 'silent' });

let double: ChatwootDouble;
let chatwoot: ChatwootClient;
let accountId: number;
let commandConversation: number;
const records = new Map<string, InstanceRecord>();
const config = () =>
  loadConfig({
    CHATWOOT_BASE_URL: double.url,
    CHATWOOT_API_ACCESS_TOKEN: double.token,
    WEBHOOK_SECRET: SECRET,
    SERVER_HOST: '127.0.0.1',
    WHATSAPP_DRIVER: 'sandbox',
    SANDBOX_QR_INTERVAL_MS: '20000',
    PUBLIC_URL: 'https://ponte.example.com',
  });

/** The registry as the commands read it: the notify conversation of each instance. */
const control: CommandControlLike = {
  record: (key) => Promise.resolve(records.get(key)),
  list: () => Promise.resolve([]),
  create: () => Promise.reject(new Error('not part of this test')),
  start: () => Promise.reject(new Error('not part of this test')),
  stop: () => Promise.reject(new Error('not part of this test')),
  logout: () => Promise.reject(new Error('not part of this test')),
  call: () => Promise.reject(new Error('not part of this test')),
};

/** A primary's command service, as a fresh start builds it: its own events, nothing in memory. */
function primary(): { events: EventEmitter; emit(instanceKey: string, event: WorkerEvent['event'], data: Record<string, unknown>): void } {
  const events = new EventEmitter();
  const links = new PendingLinks({ redis, keys, ttlMs: pendingLinkTtlMs(config().whatsapp) });
  new CommandService({ config: config(), chatwoot, control, events, links, inboxes: { provision: () => Promise.reject(new Error('not part of this test')) }, log });
  return { events, emit: (instanceKey, event, data) => events.emit('event', { type: 'event', instanceKey, event, data } satisfies WorkerEvent) };
}

function instance(inboxId: number): string {
  const key = `${accountId}-${inboxId}`;
  records.set(key, { instanceKey: key, accountId, inboxId, desired: 'running', notify: { accountId, conversationId: commandConversation, private: true }, createdAtMs: 0, updatedAtMs: 0 });
  return key;
}

const replies = (): CwMessageRecord[] => double.messages(accountId, commandConversation).filter((m) => (m.source_id ?? '').startsWith('PONTE:'));
const reply = (what: string, re: RegExp) => until(what, () => Promise.resolve(replies().find((m) => re.test(m.content ?? ''))));

beforeAll(async () => {
  double = await startChatwootDouble({ webhooksEnabled: false });
  accountId = double.addAccount().id;
  const site = double.addInbox({ accountId, name: 'Site' }).id;
  chatwoot = createChatwootClient(config());
  const { contact } = await chatwoot.createContact(accountId, { inbox_id: site, source_id: 'operator', name: 'Operador' });
  commandConversation = (await chatwoot.createConversation(accountId, { source_id: 'operator', inbox_id: site, contact_id: contact.id })).id;
});

afterAll(async () => {
  await chatwoot.close();
  await double.close();
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('links under way', () => {
  it('a link whose QR one primary showed is announced by the next one, once, without the webhook instruction when the inbox points at Ponte', async () => {
    const inboxId = double.addInbox({ accountId, name: 'Loja' }).id;
    const key = instance(inboxId);
    double.setInboxWebhook(inboxId, `http://ponte.internal:3000/webhook/chatwoot/${key}?token=${SECRET}`);

    const before = primary();
    before.emit(key, 'qr', { qr: 'QR-DATA-1', n: 1, max: 5 });
    const qr = await reply('the QR image', new RegExp(`QR code for ${key}`));
    expect(qr.attachments).toHaveLength(1);
    expect(qr.private).toBe(true);
    const ttl = await redis.pttl(keys.pendingLink(key));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(pendingLinkTtlMs({ driver: 'sandbox', sandboxQrIntervalMs: 20_000 }));

    // The primary restarts here: the QR and the conversation to answer in live only in Redis now.
    const after = primary();
    after.emit(key, 'open', { phone: '5511955554444' });
    const linked = await reply('the link confirmation', /Linked: \+5511955554444/);
    expect(linked.content).toContain(`instance ${key}`);
    expect(linked.content).not.toMatch(/Set the inbox webhook URL/);
    expect(linked.private).toBe(true);
    expect(await redis.exists(keys.pendingLink(key))).toBe(0);

    // A reconnect is no news; the alert after it shows both were handled, in order.
    after.emit(key, 'open', { phone: '5511955554444' });
    after.emit(key, 'alert', { text: 'marker' });
    await reply('the marker', new RegExp(`${key}: marker`));
    expect(replies().filter((m) => /Linked:/.test(m.content ?? ''))).toHaveLength(1);
    expect(double.violations).toEqual([]);
  });

  it('asks for the webhook URL when the inbox does not point at this instance with the right token', async () => {
    const inboxId = double.addInbox({ accountId, name: 'Outra' }).id;
    const key = instance(inboxId);
    double.setInboxWebhook(inboxId, `https://ponte.example.com/webhook/chatwoot/${key}?token=wrong`);
    const p = primary();
    p.emit(key, 'qr', { qr: 'QR-DATA-2', n: 1, max: 5 });
    p.emit(key, 'open', { phone: '5511933332222' });
    const linked = await reply('the link confirmation', /Linked: \+5511933332222/);
    expect(linked.content).toContain(`Set the inbox webhook URL (Settings → Inboxes → ${inboxId} → Configuration) to:\nhttps://ponte.example.com/webhook/chatwoot/${key}?token=<WEBHOOK_SECRET>`);
    expect(linked.content).not.toContain(SECRET);
  });

  it('an instance that opens without a QR before it (a restart from saved credentials) is not announced', async () => {
    const inboxId = double.addInbox({ accountId, name: 'Antiga' }).id;
    const key = instance(inboxId);
    const p = primary();
    p.emit(key, 'open', { phone: '5511911110000' });
    p.emit(key, 'alert', { text: 'marker' });
    await reply('the marker', new RegExp(`${key}: marker`));
    expect(replies().filter((m) => /\+5511911110000/.test(m.content ?? ''))).toEqual([]);
  });

  it('PendingLinks hands a target out once, and keeps it for its TTL only', async () => {
    const links = new PendingLinks({ redis, keys, ttlMs: 100 });
    await links.mark('9-9', { accountId: 9, conversationId: 3, private: true });
    expect(await links.take('9-9')).toEqual({ accountId: 9, conversationId: 3, private: true });
    expect(await links.take('9-9')).toBeUndefined();
    await links.mark('9-8', { accountId: 9, conversationId: 4 });
    await until('the entry expired', async () => (await redis.exists(keys.pendingLink('9-8'))) === 0);
    expect(await links.take('9-8')).toBeUndefined();
  });
});
