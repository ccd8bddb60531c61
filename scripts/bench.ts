/**
 * `npm run bench`: figures for the inbound path, printed, never asserted.
 *
 * Against the local Chatwoot double (a real HTTP server) and the configured
 * Redis, it measures:
 *   1. bare BullMQ: empty jobs through one queue at the same concurrency;
 *   2-3. Ponte inbound through the whole daemon (`bench-relay.ts`):
 *      throughput, ratio to bare BullMQ, Chatwoot calls and CPU per message,
 *      latency at a steady offered rate, and the throughput with 25 ms of
 *      latency injected into every Chatwoot answer.
 *
 *   4. media: images relayed as attachments, and the worker's peak memory
 *      (`bench-media.ts`);
 *   5. outbound: agent messages through the inbox webhook to the sandbox
 *      (`bench-outbound.ts`): webhook response time at a paced rate, and
 *      send throughput of a burst;
 *   6. instances: restore time, memory per idle instance and Redis
 *      connections of the whole daemon with BENCH_INSTANCES sandbox
 *      instances (`bench-instances.ts`);
 *   7. Redis memory of one number per 10,000 messages each way
 *      (`bench-redis-memory.ts`);
 *   8. baileys: the whole daemon on the real driver (Baileys rc14) against
 *      the loopback WhatsApp server, with BENCH_BAILEYS_INSTANCES numbers
 *      linked by QR through the admin API: memory per idle logged-in
 *      instance, and restore time after a SIGTERM (`bench-baileys.ts`);
 *   9. limiter: a burst of BENCH_LIMITER_CHATS (100) agent-started
 *      conversations under SENDS_PER_MINUTE=600: the proactive rate achieved
 *      beside the configured one, and how long a reply in a customer-started
 *      conversation takes during the burst (`bench-limiter.ts`);
 *  10. failover: BENCH_FAILOVER_HOSTS (3) hosts on one Redis prefix with
 *      BENCH_FAILOVER_NUMBERS (100) sandbox numbers; the busiest host is
 *      SIGKILLed: how long until its numbers are open on the others and a
 *      message sent to each at the kill is in Chatwoot, once per
 *      INSTANCE_LEASE_TTL_MS in BENCH_FAILOVER_TTLS (15000,3000)
 *      (`bench-failover.ts`).
 *
 * Options (environment): BENCH_MESSAGES (5000), BENCH_CHATS (50),
 * BENCH_CONCURRENCY (CHATWOOT_QUEUE_CONCURRENCY or 10), BENCH_LATENCY_MS (25),
 * BENCH_INSTANCES (1000), BENCH_WORKERS (2), BENCH_OUTBOUND (2000), BENCH_WEBHOOK_RATE (200), BENCH_MEDIA (200), BENCH_MEDIA_KB (350),
 * BENCH_MEMORY_MESSAGES (10000), BENCH_MEMORY_CHATS (200), BENCH_RESTORE_STAGGER_MS (0, instances and baileys),
 * BENCH_BAILEYS_INSTANCES (50), BENCH_BAILEYS_LOG_LEVEL (unset; e.g. debug: the baileys daemon's log, Baileys' too),
 * BENCH_STEADY_RATE (100), BENCH_STEADY_SECONDS (15), BENCH_CPU_PROF (a directory: V8 CPU profiles of the daemon),
 * BENCH_FAILOVER_HOSTS (3), BENCH_FAILOVER_NUMBERS (100), BENCH_FAILOVER_TTLS (15000,3000),
 * BENCH_ONLY (inbound | media | outbound | limiter | instances | memory | baileys | failover).
 * Ends with one table of every figure beside its target.
 */
import os from 'node:os';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/observability/logger.js';
import { resolveRedisTarget } from '../src/redis/connection.js';
import { deleteKeys } from './bench-daemon.js';
import { Figures } from './bench-figures.js';
import { benchLimiter } from './bench-limiter.js';
import { benchRelay } from './bench-relay.js';
import { benchBaileys } from './bench-baileys.js';
import { benchFailover } from './bench-failover.js';
import { benchInstances } from './bench-instances.js';
import { benchMedia } from './bench-media.js';
import { benchOutbound } from './bench-outbound.js';
import { benchRedisMemory } from './bench-redis-memory.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 5000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? process.env.CHATWOOT_QUEUE_CONCURRENCY ?? 10);

const log = createLogger({ level: 'silent' });

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
  await deleteKeys(connection, prefix);
  await connection.quit();
  return MESSAGES / seconds;
}

async function main(): Promise<void> {
  const config = loadConfig({
    CHATWOOT_BASE_URL: 'http://127.0.0.1:1',
    CHATWOOT_API_ACCESS_TOKEN: 'unused',
    WEBHOOK_SECRET: 'bench-secret-0123456789',
    SERVER_HOST: '127.0.0.1',
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
  });
  // The benches take REDIS_URL only (or the local Redis): always a URL.
  const target = await resolveRedisTarget(config, log);
  if (target.kind !== 'url') throw new Error('the benches need a Redis URL');
  const redisUrl = target.url;

  const only = process.env.BENCH_ONLY;
  const figures = new Figures();
  if (only === undefined || only === 'inbound') {
    console.log(`bare BullMQ: ${MESSAGES} empty jobs through one queue, concurrency ${CONCURRENCY}, Redis ${new URL(redisUrl).host}`);
    const bare = await bareBullmq(redisUrl);
    figures.add({ section: 'inbound', name: 'bare BullMQ, empty jobs', value: bare, unit: 'jobs/s' });
    await benchRelay(redisUrl, bare, figures);
  }
  if (only === undefined || only === 'media') await benchMedia(redisUrl, figures);
  if (only === undefined || only === 'outbound') await benchOutbound(redisUrl, figures);
  if (only === undefined || only === 'limiter') await benchLimiter(redisUrl, figures);
  if (only === undefined || only === 'instances') await benchInstances(redisUrl, figures);
  if (only === undefined || only === 'memory') await benchRedisMemory(redisUrl);
  if (only === undefined || only === 'baileys') await benchBaileys(redisUrl);
  if (only === undefined || only === 'failover') await benchFailover(redisUrl, figures);
  console.log(`\n${machine()}`);
  figures.print();
}

/** The machine the figures ran on. */
function machine(): string {
  const cpus = os.cpus();
  return `machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
