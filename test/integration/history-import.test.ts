/**
 * The history import beside the live path, on the real Redis and the
 * Chatwoot double: a sandbox socket emits history sets and live upserts
 * (real `proto.WebMessageInfo`s) through SessionHistory and SessionInbound
 * into one InboundPipeline. Each message reaches Chatwoot once whichever
 * path has it first, an agent's reply is not imported, a lost answer is
 * found again; an operator's request asks the phone for older history and
 * imports its answer into the window asked for.
 */
import type { WAMessage } from '@whiskeysockets/baileys';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ChatwootClient } from '../../src/chatwoot/client.js';
import { loadConfig } from '../../src/config/load.js';
import type { OldestMessage } from '../../src/inbound/history-store.js';
import { InboundPipeline } from '../../src/inbound/inbound-pipeline.js';
import type { ChatJobData } from '../../src/inbound/inbound-queue.js';
import { InstanceJobs } from '../../src/redis/instance-jobs.js';
import type { ImportReport } from '../../src/model/history-import.js';
import { createLogger } from '../../src/observability/logger.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { buildTextMessage } from '../../src/sandbox/message-builder.js';
import { SandboxSocket } from '../../src/sandbox/sandbox-socket.js';
import { SessionHistory } from '../../src/worker/session-history.js';
import { SessionInbound } from '../../src/worker/session-inbound.js';
import { normalizeMessage } from '../../src/whatsapp/normalize.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { deleteKeys, randomPrefix, testRedis, testRedisUrl } from '../support/redis.js';
import { linkedMemoryAuthState, silentBaileysLogger } from '../support/sandbox-auth.js';

const log = createLogger({ level: process.env.PONTE_TEST_LOG === '1' ? 'debug' : 'silent' });
const DAY = 86_400;
const MESSAGES = 'POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages';

async function until(what: string, predicate: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const giveUp = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > giveUp) throw new Error(`still waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Harness {
  double: ChatwootDouble;
  jobs: InstanceJobs<ChatJobData>;
  redis: Redis;
  prefix: string;
  keys: RedisKeys;
  instanceKey: string;
  accountId: number;
  pipeline: InboundPipeline;
  socket: SandboxSocket;
  live: SessionInbound;
  history: SessionHistory;
  reports: ImportReport[];
  asked: OldestMessage[];
  sources(): string[];
}

let h: Harness | undefined;

async function harness(env: Record<string, string> = {}): Promise<Harness> {
  const double = await startChatwootDouble({ seed: 3, webhooksEnabled: false });
  const accountId = double.addAccount().id;
  const inbox = double.addInbox({ accountId, name: 'WhatsApp' });
  const redis = testRedis();
  const prefix = randomPrefix();
  const config = loadConfig({
    CHATWOOT_BASE_URL: double.url,
    CHATWOOT_API_ACCESS_TOKEN: double.token,
    CHATWOOT_API_TIMEOUT: '1000',
    WEBHOOK_SECRET: 'test-secret-0123456789',
    SERVER_HOST: '127.0.0.1',
    REDIS_URL: testRedisUrl(),
    REDIS_PREFIX: prefix,
    BULLMQ_JOB_ATTEMPTS: '3',
    BULLMQ_JOB_BACKOFF_DELAY: '50',
    BULLMQ_LOCK_DURATION_MS: '5000',
    BULLMQ_STALLED_INTERVAL_MS: '2000',
    OUTAGE_PROBE_MIN_DELAY_MS: '20',
    OUTAGE_PROBE_MAX_DELAY_MS: '200',
    CHATWOOT_QUEUE_WORKER_LOG_LEVEL: process.env.PONTE_TEST_LOG === '1' ? 'debug' : 'silent',
    ...env,
  });
  const chatwoot = new ChatwootClient({ baseUrl: double.url, apiAccessToken: double.token, timeoutMs: 1000, idempotentRetries: 1, retryBaseDelayMs: 10 });
  const instanceKey = `${accountId}-${inbox.id}`;
  const keys = new RedisKeys(prefix);
  const socket = new SandboxSocket({ instanceKey, auth: linkedMemoryAuthState('5511900000000'), logger: silentBaileysLogger, browser: ['Ponte', 'Chrome', '1.0'] });
  const reports: ImportReport[] = [];
  const asked: OldestMessage[] = [];
  // The worker process's inbound queue, as the instance's worker holds it.
  const jobs = new InstanceJobs<ChatJobData>({ connection: redis, prefix: keys.bullPrefix, name: 'inbound.w0', concurrency: config.queue.concurrency, lockDurationMs: config.queue.lockDurationMs, stalledIntervalMs: config.queue.stalledIntervalMs, log });
  jobs.start();
  const pipeline = new InboundPipeline({
    config,
    redis,
    jobs,
    keys,
    chatwoot,
    log,
    instanceKey,
    sweepIntervalMs: 500,
    historySettleMs: 50,
    history: {
      canRun: () => true,
      requestOlder: (oldest) => {
        asked.push(oldest);
        return Promise.resolve(true);
      },
      report: (r) => reports.push(r),
    },
  });
  const live = new SessionInbound(socket.ev, { handOver: (m, t) => pipeline.producer.enqueue(m, t), log });
  const history = new SessionHistory(socket.ev, { accept: (m, o) => pipeline.history.receive(m, o), log });
  const sources = () =>
    double
      .conversations(accountId)
      .flatMap((c) => double.messages(accountId, c.id))
      .map((m) => m.source_id ?? '');
  return { double, redis, prefix, keys, instanceKey, accountId, pipeline, jobs, socket, live, history, reports, asked, sources };
}

afterEach(async () => {
  if (!h) return;
  await h.live.stop();
  await h.history.stop();
  await h.pipeline.close();
  await h.jobs.close();
  await h.double.close();
  await deleteKeys(h.redis, h.prefix);
  await h.redis.quit();
  h = undefined;
});

const text = (from: string, id: string, ts: number, fromMe = false): WAMessage => buildTextMessage({ fromPn: from, id, text: `texto ${id}`, timestampS: ts, ...(fromMe ? { fromMe } : {}) });

describe('the history import beside the live path', () => {
  it('creates each message once, whichever path has it first; skips an agent reply; finds a lost answer', async () => {
    const x = (h = await harness());
    const now = Math.floor(Date.now() / 1000);
    const ana = '5511911110001';
    const bia = '5511911110002';
    // Queued live but not delivered yet (the consumer is not running): the import leaves it to the live path.
    const queued = normalizeMessage(text(ana, 'LIVEQ', now - 100), 'notify');
    if (!queued.ok) throw new Error(queued.reason);
    await x.pipeline.producer.enqueue(queued.message);
    // An agent's reply Ponte sent on WhatsApp: it comes back in the history as the number's own message.
    await x.redis.set(x.keys.outWa(x.instanceKey, 'AGENT1'), '1:1:0:x');
    const set = [
      ...Array.from({ length: 30 }, (_, i) => text(ana, `A${i}`, now - 3 * DAY + i * 60)),
      ...Array.from({ length: 30 }, (_, i) => text(bia, `B${i}`, now - 3 * DAY + i * 60)),
      text(ana, 'LIVEQ', now - 100),
      text(bia, 'AGENT1', now - 50, true),
    ];
    // A third of the creates are applied by Chatwoot and their answers lost.
    const lose = x.double.faults.loseResponses({ ratio: 0.3, mode: 'status', status: 500, route: MESSAGES });
    x.socket.history(set);
    await x.history.idle();
    await until('the import done', () => x.reports.some((r) => r.phase === 'end'));
    lose();
    const end = x.reports.find((r) => r.phase === 'end')!;
    expect(end.status).toEqual({ state: 'done', chats: 2, messages: 62, created: 60, skipped: 2, errors: 0 });
    expect(x.double.faults.injected().lost).toBeGreaterThan(0);

    // The live path delivers its own; a live copy of an imported message is dropped as a repeat.
    await x.pipeline.start();
    x.socket.receive([text(ana, 'A5', now - 3 * DAY + 300), text(bia, 'MARK', now)], 'notify');
    await x.live.idle();
    await until('the live marker', () => x.sources().includes('WAID:MARK') && x.sources().includes('WAID:LIVEQ'));
    const sources = x.sources();
    expect(sources.filter((s) => s.startsWith('WAID:'))).toHaveLength(62);
    expect(new Set(sources).size).toBe(sources.length);
    expect(sources).not.toContain('WAID:AGENT1');
  }, 60_000);

  it('on request: asks the phone for older history of each chat and imports its answer into the window asked for', async () => {
    const x = (h = await harness({ HISTORY_IMPORT_DAYS: '0' }));
    await x.pipeline.start();
    const now = Math.floor(Date.now() / 1000);
    const ana = '5511922220001';
    const bia = '5511922220002';
    x.socket.history([text(ana, 'A1', now - 5 * DAY), text(ana, 'A2', now - 4 * DAY), text(bia, 'B1', now - 2 * DAY)]);
    await x.history.idle();
    // HISTORY_IMPORT_DAYS=0: kept, not imported.
    await new Promise((r) => setTimeout(r, 300));
    expect(await x.pipeline.history.status()).toBeUndefined();

    const result = await x.pipeline.history.request(10, { accountId: x.accountId, conversationId: 99 });
    expect(result).toEqual({ running: true, started: true, messages: 3, asked: 2, days: 10 });
    expect(x.asked.map((o) => [o.key.remoteJid, o.key.id, o.timestampS]).sort()).toEqual([
      [`${ana}@s.whatsapp.net`, 'A1', now - 5 * DAY],
      [`${bia}@s.whatsapp.net`, 'B1', now - 2 * DAY],
    ]);
    expect(x.reports[0]).toMatchObject({ phase: 'start', days: 10, notify: { accountId: x.accountId, conversationId: 99 } });
    await until('the first import done', () => x.reports.some((r) => r.phase === 'end'));

    // The phone answers: older messages of ana, one of them past the window.
    x.socket.history([text(ana, 'A0', now - 8 * DAY), text(ana, 'AOLD', now - 12 * DAY)]);
    await x.history.idle();
    await until('the answer imported', () => x.reports.filter((r) => r.phase === 'end').length === 2);
    expect(x.reports.at(-1)).toMatchObject({ phase: 'end', days: 10, status: { messages: 1, created: 1 }, notify: { conversationId: 99 } });
    const ids = x.sources();
    expect(ids).toContain('WAID:A0');
    expect(ids).not.toContain('WAID:AOLD');
    // Ana's conversation: what the first import brought, then the older message that came later.
    expect(ids.filter((s) => /^WAID:A/.test(s))).toEqual(['WAID:A1', 'WAID:A2', 'WAID:A0']);
  }, 60_000);
});
