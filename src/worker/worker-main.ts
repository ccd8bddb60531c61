import { hostname } from 'node:os';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { ILogger } from '@whiskeysockets/baileys/lib/Utils/logger.js';
import { ChatwootClient } from '../chatwoot/client.js';
import { ControlError, type PrimaryToWorker, type WorkerToPrimary } from '../cluster/ipc.js';
import type { Config } from '../config/schema.js';
import { coerceError } from '../lib/errors.js';
import { routeLibraryConsole } from '../observability/library-console.js';
import { createLogger } from '../observability/logger.js';
import { LIST_CAP, RedisKeys } from '../queue/keys.js';
import { createRedis } from '../redis/connection.js';
import { AttachmentFetcher } from '../outbound/attachment-fetch.js';
import { FileAuthStore } from '../whatsapp/auth-store.js';
import { baileysSocketFactory } from '../whatsapp/baileys-socket.js';
import { buildSandboxMessage, describeZodError, SandboxMessageSchema, type SandboxPoll, UnknownPollError } from '../whatsapp/sandbox/control.js';
import { SANDBOX_DISCONNECTS, type SandboxDisconnect, type SandboxSocket, sandboxMediaStore, sandboxSocketFactory } from '../whatsapp/sandbox/sandbox-socket.js';
import { InboundIngest } from './inbound-ingest.js';
import { InstanceRuntime } from './instance-runtime.js';
import { WorkerJournal } from './worker-journal.js';

/** How long a WhatsApp event waits for Redis before it goes to the worker's journal (Baileys acknowledged it already). */
const INBOUND_REDIS_BUDGET_MS = 2000;
/** The sandbox keeps the media its simulated senders sent, up to this many bytes (newest kept). */
const SANDBOX_MEDIA_BYTES = 256 * 1024 * 1024;

/** Appends to the sandbox outbox unless the id was sent before; both capped. KEYS: outbox list, id set. ARGV: id, entry, cap. */
const SANDBOX_OUTBOX_APPEND = `
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 and ARGV[1] ~= '' then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
if redis.call('SCARD', KEYS[2]) > 2 * tonumber(ARGV[3]) then redis.call('SPOP', KEYS[2], tonumber(ARGV[3])) end
return 1
`;

/** HTTP statuses of the errors a control call may answer with, by code; anything else is a 500 with its details in the log. */
const CONTROL_STATUS: Record<string, number> = { SANDBOX_STATE: 409, SANDBOX_UNKNOWN_MESSAGE: 404, UNKNOWN_POLL: 404, INVALID_INSTANCE_KEY: 400 };

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
  const redisUrl = config.redis.url;
  if (!redisUrl) throw new Error('worker started without REDIS_URL from its primary');
  const redis = createRedis(redisUrl, config);
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'));
  const keys = new RedisKeys(config.redis.prefix);
  const chatwoot = new ChatwootClient({ baseUrl: config.chatwoot.baseUrl, apiAccessToken: config.chatwoot.apiAccessToken, timeoutMs: config.chatwoot.timeoutMs });
  const auth = new FileAuthStore(config.whatsapp.sessionsDir);
  const attachments = new AttachmentFetcher({
    chatwootBaseUrl: config.chatwoot.baseUrl,
    allowedHosts: config.outbound.mediaHosts,
    maxBytes: config.outbound.mediaMaxBytes,
    deadlineMs: config.outbound.mediaTimeoutMs,
  });
  const baileysLogger = createLogger({ level: config.whatsapp.logLevel, base: { module: 'baileys', slot } }) as unknown as ILogger;

  const sandboxSockets = new Map<string, SandboxSocket>();
  const sandboxMedia = sandboxMediaStore(SANDBOX_MEDIA_BYTES);
  const sandboxGroups = new Map<string, string>();
  const sandboxLids = new LRUCache<string, string>({ max: 100_000 });
  const sandboxPolls = new Map<string, SandboxPoll>();
  const factory =
    config.whatsapp.driver === 'sandbox'
      ? sandboxSocketFactory({
          qrIntervalMs: config.whatsapp.sandboxQrIntervalMs,
          media: sandboxMedia,
          groups: sandboxGroups,
          lids: sandboxLids,
          onSocket: (socket, instanceKey) => sandboxSockets.set(instanceKey, socket),
          // The outbox lives in Redis so the primary can serve it and it survives a worker crash.
          // Both capped: a long rehearsal keeps the newest entries.
          // A send repeated under the same id (after a crash) is dropped, as the recipient's phone drops it.
          onSend: (entry, instanceKey) =>
            void redis
              .eval(SANDBOX_OUTBOX_APPEND, 2, keys.sandboxOutbox(instanceKey), `${keys.sandboxOutbox(instanceKey)}:ids`, entry.id, JSON.stringify(entry), String(LIST_CAP))
              .catch((err: unknown) => log.warn({ err: coerceError(err), instanceId: instanceKey }, 'could not record a sandbox send')),
          onRead: (ids, instanceKey) => void redis.multi().rpush(keys.sandboxRead(instanceKey), ...ids).ltrim(keys.sandboxRead(instanceKey), -LIST_CAP, -1).exec().catch(() => undefined),
        })
      : baileysSocketFactory;
  // One lease owner per worker slot of this primary (each session adds its
  // own token): a respawned worker takes its dead predecessor's leases back
  // at once, any other process waits.
  const leaseOwner = `${hostname()}:${primaryPid}:${slot}:`;
  const ingest = new InboundIngest(redis, keys);
  const journal = new WorkerJournal({ dir: join(config.whatsapp.sessionsDir, 'journal'), slot, log, apply: (event) => ingest.ingest(event) });
  await journal.open();
  const handOver = (event: Parameters<InboundIngest['ingest']>[0]) => journal.journal.submit(event, INBOUND_REDIS_BUDGET_MS);
  const runtimes = new Map<string, InstanceRuntime>();
  const runtimeDeps = { config, redis, keys, chatwoot, auth, factory, attachments, leaseOwner, handOver, log, baileysLogger, send };

  const sandboxOf = (instanceKey: string): SandboxSocket => {
    const s = sandboxSockets.get(instanceKey);
    if (!s || s.isClosed) throw new ControlError('not_connected', `instance ${instanceKey} has no open sandbox socket`, 409);
    return s;
  };

  const handlers: Record<string, (instanceKey: string, args: Record<string, unknown>) => Promise<unknown>> = {
    status: async (key) => runtimes.get(key)?.status(),
    logout: async (key) => {
      const rt = runtimes.get(key);
      if (rt) await rt.session.logout();
      else await auth.remove(key);
      return { ok: true };
    },
    'pairing-code': async (key, args) => {
      const rt = runtimes.get(key);
      if (!rt) throw new ControlError('not_running', `instance ${key} is not running`, 409);
      return { code: await rt.session.requestPairingCode(typeof args.phone === 'string' ? args.phone.replace(/\D/g, '') : '') };
    },
    'sandbox.scan': (key, args) => {
      const socket = sandboxSockets.get(key);
      if (!socket?.awaitingScan) throw new ControlError('no_qr', `instance ${key} is not showing a QR`, 409);
      socket.scan(String(args.phone));
      return Promise.resolve({ ok: true });
    },
    'sandbox.message': async (key, args) => {
      const parsed = SandboxMessageSchema.safeParse(args);
      if (!parsed.success) throw new ControlError('bad_request', describeZodError(parsed.error), 400);
      let built: ReturnType<typeof buildSandboxMessage>;
      try {
        built = buildSandboxMessage(parsed.data, sandboxPolls);
      } catch (err) {
        if (err instanceof UnknownPollError) throw new ControlError('not_found', `targetId: ${err.message}`, 404);
        throw err;
      }
      const { message, media, poll } = built;
      if (media) sandboxMedia.set(media.sha256, media.data);
      if (poll) sandboxPolls.set(poll.id, poll);
      if (parsed.data.group?.subject && !sandboxGroups.has(parsed.data.group.jid)) sandboxGroups.set(parsed.data.group.jid, parsed.data.group.subject);
      // A message that names both addresses reveals the pair, as WhatsApp's do.
      const k = message.key;
      for (const [a, b] of [[k.remoteJid, k.remoteJidAlt], [k.participant, k.participantAlt]]) {
        if (a?.endsWith('@lid') && b?.endsWith('@s.whatsapp.net')) sandboxLids.set(a, b);
        if (b?.endsWith('@lid') && a?.endsWith('@s.whatsapp.net')) sandboxLids.set(b, a);
      }
      sandboxOf(key).receive([message], 'notify');
      // Answered once the message is stored (Redis, or the journal), as WhatsApp's ack means it reached the number.
      await runtimes.get(key)?.inboundIdle();
      return { id: message.key.id };
    },
    'sandbox.receipt': (key, args) => {
      sandboxOf(key).receipt(String(args.id), args.status === 'read' ? 'read' : 'delivered');
      return Promise.resolve({ ok: true });
    },
    'sandbox.call': (key, args) => {
      const from = typeof args.from === 'string' ? args.from : '';
      const digits = from.split('@')[0]!.replace(/\D/g, '');
      const jid = from.includes('@') ? from : `${digits}@s.whatsapp.net`;
      const id = typeof args.id === 'string' && args.id ? args.id : `C${Date.now().toString(16).toUpperCase()}`;
      sandboxOf(key).call(jid, { id, video: args.video === true, status: args.status === 'offer' ? 'offer' : 'timeout' });
      return Promise.resolve({ id });
    },
    'sandbox.group': (key, args) => {
      sandboxOf(key).renameGroup(String(args.jid), String(args.subject));
      return Promise.resolve({ ok: true });
    },
    'sandbox.disconnect': (key, args) => {
      const reason = String(args.reason) as SandboxDisconnect;
      if (!(reason in SANDBOX_DISCONNECTS)) throw new ControlError('bad_request', `reason: must be one of ${Object.keys(SANDBOX_DISCONNECTS).join(', ')}`, 400);
      sandboxOf(key).disconnect(reason);
      return Promise.resolve({ ok: true });
    },
  };

  let stopping: Promise<void> | undefined;
  const shutdown = (why: string, exitCode = 0): Promise<void> => {
    stopping ??= (async () => {
      log.info({ why, instances: runtimes.size }, 'worker stopping');
      clearInterval(statusTimer);
      // A session whose staggered start has not come yet never starts.
      for (const t of startTimers.values()) clearTimeout(t);
      startTimers.clear();
      await Promise.allSettled([...runtimes.values()].map((rt) => rt.stop()));
      if (!(await journal.drain(2000))) log.warn({ entries: journal.journal.pending }, 'inbound journal not empty at shutdown: replayed at the next start');
      await journal.close();
      await ingest.close();
      attachments.close();
      await redis.quit().catch(() => undefined);
      log.info('worker stopped');
      log.flush();
      process.exit(exitCode);
    })();
    return stopping;
  };

  const startTimers = new Map<string, NodeJS.Timeout>();
  const onMessage = (msg: PrimaryToWorker): void => {
    switch (msg.type) {
      case 'assign': {
        if (runtimes.has(msg.instanceKey) || stopping) return;
        const rt = new InstanceRuntime(msg.instanceKey, runtimeDeps);
        runtimes.set(msg.instanceKey, rt);
        const timer = setTimeout(() => {
          startTimers.delete(msg.instanceKey);
          rt.start().catch((err: unknown) => log.error({ err: coerceError(err), instanceId: msg.instanceKey }, 'instance failed to start'));
        }, msg.delayMs ?? 0);
        startTimers.set(msg.instanceKey, timer);
        return;
      }
      case 'unassign': {
        clearTimeout(startTimers.get(msg.instanceKey));
        const rt = runtimes.get(msg.instanceKey);
        runtimes.delete(msg.instanceKey);
        void rt?.stop();
        return;
      }
      case 'request': {
        const handler = handlers[msg.op];
        Promise.resolve()
          .then(() => {
            if (!handler) throw new ControlError('bad_request', `unknown operation ${msg.op}`, 400);
            return handler(msg.instanceKey, (msg.args ?? {}) as Record<string, unknown>);
          })
          .then(
            (result) => send({ type: 'response', id: msg.id, ok: true, result }),
            (err: unknown) => {
              const e = coerceError(err);
              const status = err instanceof ControlError ? err.status : CONTROL_STATUS[(e as { code?: string }).code ?? ''];
              if (status === undefined) log.error({ err: e, op: msg.op, instanceId: msg.instanceKey }, 'control call failed');
              send({
                type: 'response',
                id: msg.id,
                ok: false,
                error: { code: err instanceof ControlError ? err.code : ((e as { code?: string }).code ?? 'internal'), message: status === undefined ? `${msg.op} failed; see the worker log` : e.message, ...(status !== undefined ? { status } : {}) },
              });
            },
          );
        return;
      }
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
    const instances = await Promise.all([...runtimes.values()].map((rt) => rt.status().catch(() => undefined)));
    const mem = process.memoryUsage();
    send({ type: 'status', slot, instances: instances.filter((i) => i !== undefined), memory: { rss: mem.rss, heapUsed: mem.heapUsed } });
  };
  const statusTimer = setInterval(() => void reportStatus().catch(() => undefined), 1000);
  statusTimer.unref();

  await redis.ping();
  send({ type: 'ready', slot });
  log.info({ driver: config.whatsapp.driver }, 'worker ready');
}
