/**
 * Nothing lost, nothing doubled, across crashes and outages, through the whole daemon (sandbox driver):
 * Redis killed and restarted on its AOF mid-stream, the whole daemon SIGKILLed and restarted with
 * messages in flight both ways, and Chatwoot failing (503, then 429) while agents reply. Runs on a
 * Redis of its own.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnRedisServer, type SpawnedRedis } from '../../src/redis/redis-server.js';
import { api, type Daemon, instanceStatus, killDaemon, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { daemonEnv, linkSandbox, SECRET, tearDown, tempDir } from '../support/e2e.js';

const CHATS = 8;

interface OutboxEntry {
  id: string;
  to: string;
  text?: string;
  caption?: string;
}

describe('reliability, black box', () => {
  let dir: string;
  let redisPort: number;
  let redis: SpawnedRedis;
  let double: ChatwootDouble;
  let daemon: Daemon;
  let env: Record<string, string>;
  let accountId: number;
  let inboxId: number;
  let key: string;

  const startRedis = () => spawnRedisServer({ dataDir: join(dir, 'redis'), appendOnly: true, appendFsync: 'always', port: redisPort });

  beforeAll(async () => {
    dir = await tempDir('ponte-e2e-faults-');
    redisPort = await freePort();
    redis = await startRedis();
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    env = daemonEnv(
      { double, sessions: join(dir, 'sessions'), redisUrl: redis.url },
      {
        CHATWOOT_API_TIMEOUT: '2000',
        MAX_WORKERS: '2',
        // A restarted primary waits this long for the leases its killed predecessor held.
        INSTANCE_LEASE_TTL_MS: '4000',
        BULLMQ_LOCK_DURATION_MS: '3000',
        BULLMQ_STALLED_INTERVAL_MS: '2000',
        OUTAGE_PROBE_MIN_DELAY_MS: '100',
        OUTAGE_PROBE_MAX_DELAY_MS: '1000',
        RATE_LIMIT_BACKOFF_MS: '500',
        OUTBOUND_MARK_READ: 'false',
      },
    );
    daemon = await startDaemon(env, { detached: true });
    inboxId = double.addInbox({ accountId, name: 'WhatsApp Vendas', webhookUrl: `${daemon.base}/webhook/chatwoot/${accountId}-1?token=${SECRET}` }).id;
    expect(inboxId).toBe(1);
    key = await linkSandbox(daemon, { account: accountId, inbox: inboxId, phone: '5511933332222' });
  }, 60_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], redis, dir }));

  const phone = (chat: number) => `55119888${String(chat).padStart(5, '0')}`;
  const all = (): CwMessageRecord[] => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id));
  const outbox = async (): Promise<OutboxEntry[]> => ((await api(daemon, 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[] | undefined) ?? [];

  /** Posts `perChat` messages to each chat, chats in parallel, each chat in order; returns the ids WhatsApp (the sandbox) took. */
  async function stream(tag: string, perChat: number, during?: { after: number; run: () => Promise<void> }): Promise<Map<number, string[]>> {
    const accepted = new Map<number, string[]>();
    let posted = 0;
    let fired: Promise<void> | undefined;
    await Promise.all(
      Array.from({ length: CHATS }, async (_, chat) => {
        const ids: string[] = [];
        accepted.set(chat, ids);
        for (let i = 0; i < perChat; i++) {
          const id = `${tag}C${chat}N${i}`;
          const r = await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: phone(chat), pushName: `Cliente ${chat}`, text: `${tag} ${chat}/${i}`, id }).catch(() => ({ status: 0 }));
          if (r.status === 201) ids.push(id);
          posted += 1;
          if (during && !fired && posted >= during.after) fired = during.run();
        }
      }),
    );
    await fired;
    return accepted;
  }

  /** Every accepted id reached Chatwoot exactly once, each chat in the order it was sent. */
  async function expectDeliveredOnce(accepted: Map<number, string[]>, tag: string): Promise<void> {
    const total = [...accepted.values()].reduce((n, ids) => n + ids.length, 0);
    const wanted = [...accepted.values()].flat().map((id) => `WAID:${id}`);
    await until(`${total} ${tag} messages in Chatwoot`, () => {
      const got = new Set(all().map((m) => m.source_id));
      return Promise.resolve(wanted.every((w) => got.has(w)) ? true : undefined);
    }, daemon, 120_000);
    const ours = all().filter((m) => (m.source_id ?? '').startsWith(`WAID:${tag}`));
    const sources = ours.map((m) => m.source_id);
    expect(new Set(sources).size).toBe(sources.length);
    for (const [chat, ids] of accepted) {
      const conv = double.conversations(accountId).filter((c) => double.messages(accountId, c.id).some((m) => m.source_id === `WAID:${ids[0]}`));
      expect(conv).toHaveLength(1);
      const inChat = double.messages(accountId, conv[0]!.id).map((m) => m.source_id).filter((s): s is string => (s ?? '').startsWith(`WAID:${tag}C${chat}N`));
      // A message whose answer a crash cut off may have arrived too: what arrived is in sending order and holds every accepted one.
      const numbers = inChat.map((s) => Number(s.split('N').pop()));
      expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
      expect(inChat).toEqual(expect.arrayContaining(ids.map((id) => `WAID:${id}`)));
    }
  }

  it('Redis killed (SIGKILL) mid-stream and restarted on its AOF: every accepted message delivered once, in order', async () => {
    const accepted = await stream('RK', 25, {
      after: 60,
      run: async () => {
        await redis.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 1500));
        redis = await startRedis();
      },
    });
    // WhatsApp's side never refused: the worker kept what Redis could not take in its journal.
    expect([...accepted.values()].every((ids) => ids.length === 25)).toBe(true);
    await expectDeliveredOnce(accepted, 'RK');
  }, 180_000);

  it('the whole daemon SIGKILLed with messages in flight both ways: after a restart nothing lost, nothing doubled, no new QR', async () => {
    // Conversations for the agent replies.
    await stream('PRE', 1);
    await until('the conversations', () => Promise.resolve(all().filter((m) => (m.source_id ?? '').startsWith('WAID:PRE')).length >= CHATS ? true : undefined), daemon);
    const conversations = Array.from({ length: CHATS }, (_, chat) => double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === `WAID:PREC${chat}N0`))!.id);
    const replies: CwMessageRecord[] = [];
    const createdAt = new Map<number, number>();
    const replying = (async () => {
      for (let i = 0; i < 40; i++) {
        const m = double.createAgentMessage(accountId, conversations[i % CHATS]!, { content: `resposta ${i}` });
        replies.push(m);
        createdAt.set(m.id, Date.now());
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    let killedAt = 0;
    let backAt = 0;
    const accepted = await stream('DK', 20, {
      after: 50,
      run: async () => {
        killedAt = Date.now();
        await killDaemon(daemon, 'SIGKILL');
        daemon = await startDaemon(env, { detached: true, port: daemon.port });
        backAt = Date.now();
      },
    });
    await replying;
    await until('open again', async () => (await instanceStatus(daemon, key))?.state === 'open', daemon);
    const status = (await api(daemon, 'GET', '/global-status')).json.instances as Array<{ instance: string; qrAttempts: number }>;
    expect(status.find((i) => i.instance === key)?.qrAttempts).toBe(0);

    await expectDeliveredOnce(accepted, 'DK');
    // A reply whose webhook found Ponte down is shown failed by Chatwoot (an agent presses Retry); every
    // other reply goes out exactly once, each conversation in order, and none goes out twice.
    const shown = () => replies.map((r) => double.messages(accountId, r.conversation_id).find((m) => m.id === r.id)!);
    const texts = async () => (await outbox()).map((e) => e.text ?? '');
    await until('the replies Chatwoot does not show failed, sent', async () => {
      const t = await texts();
      return shown().every((m) => m.status === 'failed' || t.includes(m.content ?? '')) ? true : undefined;
    }, daemon, 120_000);
    const t = await texts();
    for (const m of shown()) expect(t.filter((x) => x === m.content).length).toBeLessThanOrEqual(1);
    expect(shown().filter((m) => m.status !== 'failed').length).toBeGreaterThan(0);
    // Each conversation in order, for the replies whose webhooks were not racing the crash and the restart
    // (Chatwoot posts webhooks concurrently: around a restart they may arrive in any order).
    const settled = replies.filter((r) => createdAt.get(r.id)! < killedAt - 500 || createdAt.get(r.id)! > backAt + 200);
    for (const conv of conversations) {
      const sentHere = t.filter((x) => settled.some((r) => r.conversation_id === conv && r.content === x));
      expect(sentHere).toEqual(settled.filter((r) => r.conversation_id === conv && sentHere.includes(r.content ?? '')).map((r) => r.content));
    }
  }, 240_000);

  it('Chatwoot answering 503, then 429, while agents reply: every reply sent once, in order, ending sent, none failed', async () => {
    await stream('CO', 1);
    await until('the conversations', () => Promise.resolve(all().filter((m) => (m.source_id ?? '').startsWith('WAID:CO')).length >= CHATS ? true : undefined), daemon);
    const conversations = Array.from({ length: 4 }, (_, chat) => double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === `WAID:COC${chat}N0`))!.id);
    // Ten seconds of 503 on every call, then ten of 429, with agents replying throughout.
    double.faults.fail({ status: 503, forMs: 10_000 });
    const replies: CwMessageRecord[] = [];
    const reply = (i: number) =>
      replies.push(
        double.createAgentMessage(accountId, conversations[i % 4]!, {
          content: `durante a queda ${i}`,
          // Some with an attachment: fetched from Chatwoot, which is down too.
          ...(i % 5 === 2 ? { attachments: [{ fileName: `nota-${i}.pdf`, contentType: 'application/pdf', data: Buffer.from(`%PDF-1.4 nota ${i}\n%%EOF\n`) }] } : {}),
        }),
      );
    for (let i = 0; i < 10; i++) reply(i);
    await new Promise((r) => setTimeout(r, 10_000));
    double.faults.fail({ status: 429, forMs: 10_000 });
    for (let i = 10; i < 20; i++) reply(i);
    const sentTexts = async () => (await outbox()).map((e) => e.text ?? e.caption ?? '');
    await until('every reply on WhatsApp', async () => {
      const t = await sentTexts();
      return replies.every((r) => t.includes(r.content ?? '')) ? true : undefined;
    }, daemon, 120_000);
    const final = await until('every reply shown sent', () => {
      const ms = replies.map((r) => double.messages(accountId, r.conversation_id).find((m) => m.id === r.id)!);
      return Promise.resolve(ms.every((m) => m.status === 'sent') ? ms : undefined);
    }, daemon, 120_000);
    for (const m of final) expect(m.statusHistory).not.toContain('failed');
    const t = await sentTexts();
    for (const r of replies) expect(t.filter((x) => x === r.content)).toHaveLength(1);
    for (const conv of conversations) {
      expect(t.filter((x) => replies.some((r) => r.conversation_id === conv && r.content === x))).toEqual(replies.filter((r) => r.conversation_id === conv).map((r) => r.content));
    }
  }, 240_000);
});
