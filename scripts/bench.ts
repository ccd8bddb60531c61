/**
 * `npm run bench`: figures for the inbound path, printed, never asserted.
 *
 * Against the local Chatwoot double (a real HTTP server) and the configured
 * Redis, it measures:
 *   1. bare BullMQ: empty jobs through one queue at the same concurrency;
 *   2. Ponte inbound: WhatsApp messages (real `proto.WebMessageInfo`) from a
 *      session's `messages.upsert` to created Chatwoot messages — messages
 *      per second, p50/p99 latency (event → Chatwoot answered the create),
 *      Chatwoot calls per message, and the ratio to bare BullMQ;
 *   3. the same with 25 ms of latency injected into every Chatwoot answer.
 *
 *   4. media: images relayed as attachments, and the worker's peak memory
 *      (`bench-media.ts`);
 *   5. outbound: agent messages through the inbox webhook to the sandbox
 *      (`bench-outbound.ts`): webhook response time and send throughput;
 *   6. instances: restore time and memory per idle instance of the whole
 *      daemon with BENCH_INSTANCES sandbox instances (`bench-instances.ts`);
 *   7. Redis memory of one number per 10,000 messages each way
 *      (`bench-redis-memory.ts`);
 *   8. baileys: the whole daemon on the real driver (Baileys rc14) against
 *      the loopback WhatsApp server, with BENCH_BAILEYS_INSTANCES numbers
 *      linked by QR through the admin API: memory per idle logged-in
 *      instance, and restore time after a SIGTERM (`bench-baileys.ts`).
 *
 * Options (environment): BENCH_MESSAGES (5000), BENCH_CHATS (50),
 * BENCH_CONCURRENCY (CHATWOOT_QUEUE_CONCURRENCY or 10), BENCH_LATENCY_MS (25),
 * BENCH_INSTANCES (200), BENCH_WORKERS (2), BENCH_OUTBOUND (2000), BENCH_MEDIA (200), BENCH_MEDIA_KB (350),
 * BENCH_MEMORY_MESSAGES (10000), BENCH_MEMORY_CHATS (200), BENCH_RESTORE_STAGGER_MS (0, instances and baileys),
 * BENCH_BAILEYS_INSTANCES (50), BENCH_BAILEYS_LOG_LEVEL (unset; e.g. debug: the baileys daemon's log, Baileys' too),
 * BENCH_ONLY (inbound | media | outbound | instances | memory | baileys).
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config/load.js';
import { ChatwootClient } from '../src/chatwoot/client.js';
import { createLogger } from '../src/observability/logger.js';
import { RedisKeys } from '../src/redis/keys.js';
import { resolveRedisUrl } from '../src/redis/connection.js';
import { InboundPipeline } from '../src/inbound/inbound-pipeline.js';
import { SessionInbound } from '../src/worker/session-inbound.js';
import { buildTextMessage } from '../src/sandbox/message-builder.js';
import { SandboxSocket } from '../src/sandbox/sandbox-socket.js';
import { linkedMemoryAuthState, silentBaileysLogger } from '../test/support/sandbox-auth.js';
import { startChatwootDouble, type ChatwootDouble } from '../test/support/chatwoot-double/index.js';
import { benchBaileys } from './bench-baileys.js';
import { benchInstances } from './bench-instances.js';
import { benchMedia } from './bench-media.js';
import { benchOutbound } from './bench-outbound.js';
import { benchRedisMemory } from './bench-redis-memory.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 5000);
const CHATS = Number(process.env.BENCH_CHATS ?? 50);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? process.env.CHATWOOT_QUEUE_CONCURRENCY ?? 10);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 25);

const log = createLogger({ level: 'silent' });

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function scanDelete(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

async function bareBullmq(redisUrl: string): Promise<number> {
  const prefix = `ponte-bench:${process.pid}:bare`;
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('bare', { connection, prefix, defaultJobOptions: { removeOnComplete: true } });
  let done = 0;
  let allDone: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  const worker = new Worker(
    'bare',
    () => {
      done += 1;
      if (done === MESSAGES) allDone();
      return Promise.resolve();
    },
    { connection, prefix, concurrency: CONCURRENCY },
  );
  const start = performance.now();
  for (let i = 0; i < MESSAGES; i++) await queue.add('job', {});
  await finished;
  const seconds = (performance.now() - start) / 1000;
  await worker.close();
  await queue.close();
  await scanDelete(connection, prefix);
  await connection.quit();
  return MESSAGES / seconds;
}

interface PonteFigures {
  perSecond: number;
  p50: number;
  p99: number;
  callsPerMessage: number;
  warmCallsPerMessage: number;
}

async function ponteInbound(redisUrl: string, double: ChatwootDouble, label: string): Promise<PonteFigures> {
  const prefix = `ponte-bench:${process.pid}:${label}:`;
  const config = loadConfig({
    CHATWOOT_BASE_URL: double.url,
    CHATWOOT_API_ACCESS_TOKEN: double.token,
    WEBHOOK_SECRET: 'bench-secret-0123456789',
    SERVER_HOST: '127.0.0.1',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    CHATWOOT_QUEUE_CONCURRENCY: String(CONCURRENCY),
    CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'silent',
  });
  const account = double.addAccount();
  const inbox = double.addInbox({ accountId: account.id, name: `bench ${label}` });
  const instanceKey = `${account.id}-${inbox.id}`;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const chatwoot = new ChatwootClient({ baseUrl: double.url, apiAccessToken: double.token, timeoutMs: 10_000 });
  const latencies: number[] = [];
  let allRelayed: () => void = () => undefined;
  let chatsWarm: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (allRelayed = resolve));
  const warm = new Promise<void>((resolve) => (chatsWarm = resolve));
  const pipeline = new InboundPipeline({
    config,
    redis,
    keys: new RedisKeys(prefix),
    chatwoot,
    log,
    instanceKey,
    onDelivered: (event) => {
      latencies.push(Date.now() - event.receivedAtMs);
      if (latencies.length === CHATS) chatsWarm();
      if (latencies.length === MESSAGES) allRelayed();
    },
  });

  const socket = new SandboxSocket({ instanceKey, auth: linkedMemoryAuthState('5511900000000'), logger: silentBaileysLogger, browser: ['Ponte', 'Chrome', '1.0'] });
  const session = new SessionInbound(socket.ev, { handOver: (m, t) => pipeline.producer.enqueue(m, t), log });
  await pipeline.start();
  double.calls.reset();

  // The first message of each chat is cold (contact, contact inbox,
  // conversation); every later one should cost one call.
  const start = performance.now();
  let coldCalls = 0;
  for (let i = 0; i < MESSAGES; i++) {
    const chat = i % CHATS;
    const msg = buildTextMessage({ fromPn: `55119${String(10_000_000 + chat).padStart(8, '0')}`, pushName: `Cliente ${chat}`, text: `mensagem ${i}`, id: `BENCH${label}${i}` });
    socket.receive([msg], 'notify');
    if (i === CHATS - 1) {
      await warm;
      coldCalls = double.calls.count();
    }
    if (i % 100 === 99) await session.idle();
  }
  await finished;
  const seconds = (performance.now() - start) / 1000;
  const calls = double.calls.count();
  await session.stop();
  await pipeline.close();
  await scanDelete(redis, prefix);
  await redis.quit();
  latencies.sort((a, b) => a - b);
  return {
    perSecond: MESSAGES / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    callsPerMessage: calls / MESSAGES,
    warmCallsPerMessage: Math.max(0, calls - coldCalls) / (MESSAGES - CHATS),
  };
}

function row(name: string, f: PonteFigures, bare: number): string {
  return [
    name.padEnd(28),
    `${f.perSecond.toFixed(0).padStart(7)} msg/s`,
    `p50 ${String(f.p50).padStart(5)} ms`,
    `p99 ${String(f.p99).padStart(5)} ms`,
    `${f.callsPerMessage.toFixed(3)} calls/msg`,
    `(${f.warmCallsPerMessage.toFixed(3)} once warm)`,
    `${((f.perSecond / bare) * 100).toFixed(1)}% of bare BullMQ`,
  ].join('  ');
}

async function main(): Promise<void> {
  const config = loadConfig({
    CHATWOOT_BASE_URL: 'http://127.0.0.1:1',
    CHATWOOT_API_ACCESS_TOKEN: 'unused',
    WEBHOOK_SECRET: 'bench-secret-0123456789',
    SERVER_HOST: '127.0.0.1',
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
  });
  const redisUrl = await resolveRedisUrl(config, log);

  const only = process.env.BENCH_ONLY;
  if (only === undefined || only === 'inbound') {
    console.log(`Ponte inbound benchmark: ${MESSAGES} messages over ${CHATS} chats, concurrency ${CONCURRENCY}, Redis ${new URL(redisUrl).host}`);
    const bare = await bareBullmq(redisUrl);
    console.log(`${'bare BullMQ (empty jobs)'.padEnd(28)}  ${bare.toFixed(0).padStart(7)} msg/s`);

    const double = await startChatwootDouble({ webhooksEnabled: false });
    try {
      const fast = await ponteInbound(redisUrl, double, 'fast');
      console.log(row('Ponte → Chatwoot double', fast, bare));
      const remove = double.faults.slow(LATENCY_MS);
      const slow = await ponteInbound(redisUrl, double, 'slow');
      remove();
      console.log(row(`same, +${LATENCY_MS} ms per call`, slow, bare));
    } finally {
      await double.close();
    }
  }
  if (only === undefined || only === 'media') await benchMedia(redisUrl);
  if (only === undefined || only === 'outbound') await benchOutbound(redisUrl);
  if (only === undefined || only === 'instances') await benchInstances(redisUrl);
  if (only === undefined || only === 'memory') await benchRedisMemory(redisUrl);
  if (only === undefined || only === 'baileys') await benchBaileys(redisUrl);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
