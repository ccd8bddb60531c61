/** A cluster worker wired: the instances the primary assigns, their control calls and status reports. */
import { join } from 'node:path';
import type { ILogger } from '@whiskeysockets/baileys/lib/Utils/logger.js';
import { createChatwootClient } from '../chatwoot/client.js';
import type { PrimaryToWorker, WorkerToPrimary } from '../cluster/ipc.js';
import type { Config } from '../config/schema.js';
import { coerceError } from '../lib/errors.js';
import { routeLibraryConsole } from '../observability/library-console.js';
import { createLogger } from '../observability/logger.js';
import { inboundQueueName, outboundQueueName, RedisKeys } from '../redis/keys.js';
import { configuredRedisTarget, createRedis } from '../redis/connection.js';
import { AttachmentFetcher } from '../outbound/attachment-fetch.js';
import { createAuthStore } from '../whatsapp/auth-stores.js';
import { baileysSocketFactory } from '../whatsapp/baileys-socket.js';
import { InboundIngest } from './inbound-ingest.js';
import type { ChatJobData } from '../inbound/inbound-queue.js';
import type { ConversationJobData } from '../outbound/outbound-queue.js';
import { InstanceJobs } from '../redis/instance-jobs.js';
import { InstanceHost } from './instance-host.js';
import { WorkerJournal } from './worker-journal.js';

/** How long a WhatsApp event waits for Redis before it goes to the worker's journal (Baileys acknowledged it already). */
const INBOUND_REDIS_BUDGET_MS = 2000;

/**
 * A cluster worker: runs the instances the primary assigns to it, answers
 * its control calls, and reports status. Never opens the HTTP port.
 */
export async function runWorker(config: Readonly<Config>, primaryPid: number): Promise<void> {
  const slot = config.server.workerSlot ?? 0;
  const log = createLogger({ level: config.server.logLevel, base: { module: 'worker', slot } });
  routeLibraryConsole(log);
  const send = (m: WorkerToPrimary): void => {
    if (process.connected) process.send?.(m);
  };
  const redisTarget = configuredRedisTarget(config);
  if (!redisTarget) throw new Error('worker started without a Redis target (REDIS_URL or REDIS_SENTINELS) from its primary');
  const redis = createRedis(redisTarget, config);
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'));
  const keys = new RedisKeys(config.redis.prefix);
  const chatwoot = createChatwootClient(config);
  const auth = createAuthStore(config, redis, keys);
  const attachments = new AttachmentFetcher({
    chatwootBaseUrl: config.chatwoot.baseUrl,
    allowedHosts: config.outbound.mediaHosts,
    maxBytes: config.outbound.mediaMaxBytes,
    deadlineMs: config.outbound.mediaTimeoutMs,
  });
  const baileysLogger = createLogger({ level: config.whatsapp.logLevel, base: { module: 'baileys', slot } }) as unknown as ILogger;

  // The sandbox driver is loaded only in sandbox mode: production workers never carry it.
  const sandbox =
    config.whatsapp.driver === 'sandbox'
      ? (await import('../sandbox/driver.js')).createSandboxDriver({
          qrIntervalMs: config.whatsapp.sandboxQrIntervalMs,
          notOnWhatsApp: config.whatsapp.sandboxNotOnWhatsApp,
          redis,
          keys,
          log,
          hostId: config.server.hostId,
          inboundIdle: async (instanceKey) => host.get(instanceKey)?.inboundIdle(),
          historyIdle: async (instanceKey) => host.get(instanceKey)?.historyIdle(),
        })
      : undefined;
  // One lease owner per worker slot of this primary (each session adds its
  // own token): a respawned worker takes its dead predecessor's leases back
  // at once, any other process waits.
  const leaseOwner = `${config.server.hostId}:${primaryPid}:${slot}:`;
  // One queue and one BullMQ worker per process for each direction, serving every instance it runs.
  const q = config.queue;
  const jobsOptions = { connection: redis, prefix: keys.bullPrefix, concurrency: q.concurrency, lockDurationMs: q.lockDurationMs, stalledIntervalMs: q.stalledIntervalMs, log };
  const inboundJobs = new InstanceJobs<ChatJobData>({ ...jobsOptions, name: inboundQueueName(config.server.hostId, slot) });
  const outboundJobs = new InstanceJobs<ConversationJobData>({ ...jobsOptions, name: outboundQueueName(config.server.hostId, slot) });
  const ingest = new InboundIngest(redis, keys, inboundJobs.queue);
  const journal = new WorkerJournal({ dir: join(config.whatsapp.sessionsDir, 'journal'), slot, log, apply: (event) => ingest.ingest(event) });
  await journal.open();
  const host: InstanceHost = new InstanceHost({
    runtime: {
      config,
      redis,
      keys,
      chatwoot,
      auth,
      factory: sandbox?.factory ?? baileysSocketFactory,
      attachments,
      leaseOwner,
      inboundJobs,
      outboundJobs,
      handOver: (event) => journal.journal.submit(event, INBOUND_REDIS_BUDGET_MS),
      log,
      baileysLogger,
      send,
    },
    auth,
    log,
    ...(sandbox ? { driverHandlers: sandbox.handlers } : {}),
  });

  let stopping: Promise<void> | undefined;
  const shutdown = (why: string, exitCode = 0): Promise<void> => {
    stopping ??= (async () => {
      log.info({ why, instances: host.size }, 'worker stopping');
      clearInterval(statusTimer);
      await host.close();
      if (!(await journal.drain(2000))) log.warn({ entries: journal.journal.pending }, 'inbound journal not empty at shutdown: replayed at the next start');
      await journal.close();
      await Promise.allSettled([inboundJobs.close(), outboundJobs.close()]);
      attachments.close();
      await redis.quit().catch(() => undefined);
      log.info('worker stopped');
      log.flush();
      process.exit(exitCode);
    })();
    return stopping;
  };

  const onMessage = (msg: PrimaryToWorker): void => {
    switch (msg.type) {
      case 'assign':
        if (!stopping) host.assign(msg.instanceKey, msg.delayMs);
        return;
      case 'unassign':
        host.unassign(msg.instanceKey);
        return;
      case 'request':
        void host.answer(msg.id, msg.op, msg.instanceKey, (msg.args ?? {}) as Record<string, unknown>).then(send);
        return;
      case 'shutdown':
        void shutdown('primary asked');
        return;
    }
  };
  process.on('message', onMessage);
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // A bug that escapes every handler: log it, stop through the normal shutdown (sessions closed, journal kept), exit non-zero; the primary forks the worker again.
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: coerceError(reason) }, 'unhandled rejection: worker stopping');
    void shutdown('fatal error', 1);
  });
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception: worker stopping');
    void shutdown('fatal error', 1);
  });
  process.on('disconnect', () => void shutdown('primary gone'));

  const reportStatus = async (): Promise<void> => {
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    send({ type: 'status', slot, instances: await host.statuses(), memory: { rss: mem.rss, heapUsed: mem.heapUsed }, cpuUs: cpu.user + cpu.system });
  };
  const statusTimer = setInterval(() => void reportStatus().catch(() => undefined), 1000);
  statusTimer.unref();

  await redis.ping();
  inboundJobs.start();
  outboundJobs.start();
  send({ type: 'ready', slot });
  log.info({ driver: config.whatsapp.driver }, 'worker ready');
}
