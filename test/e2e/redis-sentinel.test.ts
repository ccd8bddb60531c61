/**
 * Redis behind Sentinel, through the whole daemon (sandbox driver): Ponte
 * finds the master through Sentinel (REDIS_SENTINELS, no REDIS_URL), and a
 * switch of master in the middle of a stream of inbound messages pauses
 * delivery and resumes it with nothing lost, nothing doubled, each chat in
 * order; agent replies written around the switch go out once, in order.
 * Runs on a Redis group of its own (master, replica, one Sentinel), never on
 * the shared test Redis.
 *
 * Each switch is a planned one: writes paused on the master until the
 * replica holds them all, then `SENTINEL FAILOVER`. Sentinel's fail-over
 * alone is not graceful: the old master takes writes until Sentinel demotes
 * it seconds later, and discards them when it resyncs, so a test of
 * "nothing lost" without the pause would test Redis, not Ponte. After the
 * pause, Ponte's connections must leave the old master as soon as Sentinel
 * names the new one (what they wrote there would be lost). The second switch
 * runs with `min-replicas-to-write 1`, so that no master accepts writes
 * until the old one is the new one's replica (about ten seconds): an outage
 * Ponte has to ride out. Last, the master is killed mid-stream: what it
 * had not yet passed to its replica may be lost (Redis replicates
 * asynchronously), so there only the messages sent after Sentinel promoted
 * the replica must all arrive; nothing may arrive twice or out of order.
 */
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, type Daemon, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { daemonEnv, linkSandbox, SECRET, tearDown, tempDir } from '../support/e2e.js';
import { startSentinelGroup, type SentinelGroup } from '../support/redis-sentinel.js';

const CHATS = 4;
const PER_CHAT = 25;

interface OutboxEntry {
  id: string;
  text?: string;
}

/** How many of the daemon's connections the Redis at `port` has (ioredis names them after the prefix). */
async function ponteClients(port: number): Promise<number> {
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const list = String(await client.call('CLIENT', 'LIST', 'TYPE', 'normal'));
    return list.split('\n').filter((line) => / name=ponte:/.test(line)).length;
  } finally {
    client.disconnect();
  }
}

describe('Redis behind Sentinel, black box', () => {
  let dir: string;
  let group: SentinelGroup | undefined;
  let double: ChatwootDouble;
  let daemon: Daemon | undefined;
  let accountId: number;
  let key: string;
  const conversations: number[] = [];

  beforeAll(async () => {
    dir = await tempDir('ponte-e2e-sentinel-');
    group = await startSentinelGroup({ dir: join(dir, 'redis'), name: 'ponte-test' });
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    daemon = await startDaemon(
      daemonEnv(
        { double, sessions: join(dir, 'sessions') },
        {
          REDIS_URL: undefined,
          ...group.env,
          MAX_WORKERS: '1',
          BULLMQ_LOCK_DURATION_MS: '3000',
          BULLMQ_STALLED_INTERVAL_MS: '2000',
          OUTAGE_PROBE_MIN_DELAY_MS: '100',
          OUTAGE_PROBE_MAX_DELAY_MS: '1000',
          OUTBOUND_MARK_READ: 'false',
        },
      ),
    );
    const inboxId = double.addInbox({ accountId, name: 'WhatsApp Vendas', webhookUrl: `${daemon.base}/webhook/chatwoot/${accountId}-1?token=${SECRET}` }).id;
    expect(inboxId).toBe(1);
    key = await linkSandbox(daemon, { account: accountId, inbox: inboxId, phone: '5511933332222' });
    // A first message per chat: the conversations the agents reply in.
    for (let chat = 0; chat < CHATS; chat++) await post(chat, `FIRST${chat}`, `olá ${chat}`);
    await until('the first messages in Chatwoot', () => Promise.resolve(all().filter((m) => (m.source_id ?? '').startsWith('WAID:FIRST')).length === CHATS || undefined), daemon);
    for (let chat = 0; chat < CHATS; chat++) conversations.push(double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === `WAID:FIRST${chat}`))!.id);
  }, 60_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double, group], dir }));

  const d = (): Daemon => daemon!;
  const g = (): SentinelGroup => group!;
  const phone = (chat: number) => `55119777${String(chat).padStart(5, '0')}`;
  const all = (): CwMessageRecord[] => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id));
  const outbox = async (): Promise<OutboxEntry[]> => ((await api(d(), 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[] | undefined) ?? [];
  const post = async (chat: number, id: string, text: string) => {
    const r = await api(d(), 'POST', `/sandbox/instances/${key}/messages`, { from: phone(chat), pushName: `Cliente ${chat}`, text, id });
    expect(r.status).toBe(201);
  };

  /** A planned switch, resumed once the daemon has left the old master. */
  const plannedSwitch = () => g().switchMaster({ resumeWhen: async (from) => (await ponteClients(from)) === 0 });

  /**
   * Streams 100 messages (chats in parallel, each in order) in three parts:
   * 40 before `switchMaster`, 32 while it runs, 28 once it has resolved
   * (Sentinel names the new master). Agents reply in every conversation as
   * soon as the switch is done and again once the old master is a replica.
   * Then checks that every message reached Chatwoot once, in order, and
   * every reply went out once, in order. After a crash (`crashed`), the
   * messages the old master had taken but not yet passed to its replica may
   * be gone with it: of those sent before the switch was done, the ones that
   * arrived are checked to be once each and in order.
   */
  async function streamThroughSwitch(tag: string, switchMaster: () => Promise<{ from: number; to: number }>, o: { crashed?: boolean } = {}): Promise<{ from: number; to: number }> {
    const replies: CwMessageRecord[] = [];
    let startSwitch: () => void = () => undefined;
    const switchStarts = new Promise<void>((resolve) => (startSwitch = resolve));
    const switched = switchStarts
      .then(switchMaster)
      .then((s) => {
        for (const [c, conv] of conversations.entries()) replies.push(double.createAgentMessage(accountId, conv, { content: `${tag} durante ${c}` }));
        return s;
      });
    let posted = 0;
    await Promise.all(
      Array.from({ length: CHATS }, async (_, chat) => {
        for (let i = 0; i < PER_CHAT; i++) {
          if (i === 18) await switched;
          await post(chat, `${tag}C${chat}N${i}`, `${tag} ${chat}/${i}`);
          posted += 1;
          if (posted === 40) startSwitch();
        }
      }),
    );
    const result = await switched;

    const firstAfter = o.crashed ? 18 : 0;
    const wanted = Array.from({ length: CHATS * (PER_CHAT - firstAfter) }, (_, n) => `WAID:${tag}C${n % CHATS}N${firstAfter + Math.floor(n / CHATS)}`);
    await until(`${wanted.length} ${tag} messages in Chatwoot`, () => {
      const got = new Set(all().map((m) => m.source_id));
      return Promise.resolve(wanted.every((s) => got.has(s)) || undefined);
    }, d(), 120_000);
    for (const [chat, conv] of conversations.entries()) {
      const inChat = double.messages(accountId, conv).map((m) => m.source_id ?? '').filter((s) => s.startsWith(`WAID:${tag}C${chat}N`));
      const numbers = inChat.map((s) => Number(s.split('N').pop()));
      if (o.crashed) expect(numbers).toEqual([...new Set(numbers)].sort((a, b) => a - b));
      else expect(numbers).toEqual(Array.from({ length: PER_CHAT }, (_, i) => i));
    }

    await g().replicated();
    for (const [c, conv] of conversations.entries()) replies.push(double.createAgentMessage(accountId, conv, { content: `${tag} depois ${c}` }));
    const texts = await until(`every ${tag} reply on WhatsApp`, async () => {
      const t = (await outbox()).map((e) => e.text ?? '');
      return replies.every((r) => t.includes(r.content ?? '')) ? t : undefined;
    }, d(), 120_000);
    for (const r of replies) expect(texts.filter((t) => t === r.content)).toHaveLength(1);
    for (const c of conversations.keys()) expect(texts.filter((t) => t === `${tag} durante ${c}` || t === `${tag} depois ${c}`)).toEqual([`${tag} durante ${c}`, `${tag} depois ${c}`]);
    await until(`every ${tag} reply shown sent`, () => Promise.resolve(replies.every((r) => double.messages(accountId, r.conversation_id).find((m) => m.id === r.id)?.status === 'sent') || undefined), d());

    // Every connection of the daemon moved to the new master.
    await until('the daemon on the new master only', async () => (await ponteClients(result.from)) === 0 && (await ponteClients(result.to)) > 0, d());
    return result;
  }

  it('finds the master through Sentinel', async () => {
    const master = await g().masterPort();
    expect(master).toBe(g().nodes[0]!.port);
    expect(await ponteClients(master)).toBeGreaterThan(0);
    expect(await ponteClients(g().nodes[1]!.port)).toBe(0);
  });

  it('a planned switch mid-stream: every message in Chatwoot once and in order, agent replies sent once', async () => {
    const { from, to } = await streamThroughSwitch('FA', plannedSwitch);
    expect([from, to]).toEqual([g().nodes[0]!.port, g().nodes[1]!.port]);
  }, 240_000);

  it('a switch back with min-replicas-to-write 1 (no master takes writes for a while): the same', async () => {
    await g().requireReplicas(1);
    const { from, to } = await streamThroughSwitch('FB', plannedSwitch);
    expect([from, to]).toEqual([g().nodes[1]!.port, g().nodes[0]!.port]);
  }, 240_000);

  it('the master killed (SIGKILL) mid-stream: Sentinel promotes the replica, delivery resumes; nothing doubled, each chat in order', async () => {
    const { from, to } = await streamThroughSwitch(
      'FK',
      async () => {
        const master = await g().masterPort();
        await g().crash(master);
        const promoted = await until('Sentinel naming the replica', async () => {
          const port = await g().masterPort();
          return port !== master ? port : undefined;
        });
        // Back only once Sentinel has moved on (empty: a master without persistence must not come back as
        // one); Sentinel makes it the new master's replica, and the new master, with min-replicas-to-write 1
        // still, takes writes again.
        await g().restart(master);
        return { from: master, to: promoted };
      },
      { crashed: true },
    );
    expect([from, to]).toEqual([g().nodes[0]!.port, g().nodes[1]!.port]);
  }, 240_000);
});
