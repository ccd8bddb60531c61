/**
 * Webhooks while Redis is away (DESIGN.md, Decisions 17): Chatwoot still gets
 * its 2xx, the events wait in the primary's local journal, and once Redis is
 * back they are carried out in order, once. Runs on a Redis of its own.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnRedisServer, type SpawnedRedis } from '../../src/redis/redis-server.js';
import { api, type Daemon, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { daemonEnv, linkSandbox, SECRET, tearDown, tempDir } from '../support/e2e.js';

const SIGNING = 'account-webhook-signing-secret';

describe('webhooks during a Redis outage, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let redis: SpawnedRedis;
  let dir: string;
  let port: number;
  let accountId: number;
  let inboxId: number;
  let key: string;

  beforeAll(async () => {
    dir = await tempDir('ponte-e2e-redis-');
    port = await freePort();
    redis = await spawnRedisServer({ dataDir: join(dir, 'redis'), appendOnly: true, port });
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    const ana = double.addUser({ name: 'Ana', email: 'ana@example.com' });
    expect(ana.id).toBe(2);
    daemon = await startDaemon(
      daemonEnv(
        { double, sessions: join(dir, 'sessions'), redisUrl: redis.url },
        { CHATWOOT_ACCOUNT_WEBHOOK_SECRET: SIGNING, WEBHOOK_AUTHORIZED_AGENT_EMAILS: 'ana@example.com', MAX_WORKERS: '1', INSTANCE_LEASE_TTL_MS: '60000' },
      ),
    );
    inboxId = double.addInbox({ accountId, name: 'WhatsApp Vendas', webhookUrl: `${daemon.base}/webhook/chatwoot/${accountId}-1?token=${SECRET}` }).id;
    expect(inboxId).toBe(1);
    double.addAccountWebhook({ accountId, url: `${daemon.base}/webhook/comando?token=${SECRET}`, subscriptions: ['message_created'], secret: SIGNING });
    key = await linkSandbox(daemon, { account: accountId, inbox: inboxId, phone: '5511933332222' });
  }, 60_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], redis, dir }));

  it('answers 2xx while Redis is down and carries out every event, in order, once it is back', async () => {
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: '5511911112222', pushName: 'Cliente', text: 'oi', id: 'IN1' })).status).toBe(201);
    const conv = await until('the relayed message', () => Promise.resolve(double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === 'WAID:IN1'))?.id));
    const outbox = async () => ((await api(daemon, 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as Array<{ text?: string }> | undefined) ?? [];
    await until('the outbox readable', async () => (await api(daemon, 'GET', `/sandbox/instances/${key}/outbox`)).status === 200);

    await redis.stop();
    const before = double.webhookDeliveries().length;
    for (const text of ['um', 'dois', 'três']) double.createAgentMessage(accountId, conv, { content: text });
    double.createAgentMessage(accountId, conv, { content: 'erga help', private: true, userId: 2 });
    // Each message goes to the inbox webhook and to the account webhook: eight deliveries.
    const during = await until('the eight deliveries answered', () => {
      const d = double.webhookDeliveries().slice(before);
      return Promise.resolve(d.length >= 8 ? d : undefined);
    });
    // Every authentic delivery got its 2xx: Chatwoot marks nothing failed.
    expect(during.map((d) => d.status)).toEqual(new Array(8).fill(200));
    expect(double.messages(accountId, conv).filter((m) => m.status === 'failed')).toEqual([]);

    redis = await spawnRedisServer({ dataDir: join(dir, 'redis'), appendOnly: true, port });
    const sent = await until('the three replies sent', async () => {
      const texts = (await outbox()).map((e) => e.text ?? '');
      return texts.filter((t) => /^(um|dois|três)$/.test(t)).length >= 3 ? texts : undefined;
    });
    expect(sent.filter((t) => /^(um|dois|três)$/.test(t))).toEqual(['um', 'dois', 'três']);
    await until('the command answered', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.private && (m.source_id ?? '').startsWith('PONTE:'))));
    // A marker after the outage: nothing came twice.
    double.createAgentMessage(accountId, conv, { content: 'quatro' });
    await until('the marker', async () => (await outbox()).some((e) => e.text === 'quatro'));
    const texts = (await outbox()).map((e) => e.text ?? '');
    expect(texts.filter((t) => /^(um|dois|três|quatro)$/.test(t))).toEqual(['um', 'dois', 'três', 'quatro']);
    expect(double.messages(accountId, conv).filter((m) => m.private && (m.source_id ?? '').startsWith('PONTE:'))).toHaveLength(1);
  }, 90_000);
});
