/** The primary process wired: Redis, registry, supervisor, control plane, webhooks and the HTTP port. */
import cluster from 'node:cluster';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { redactConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { checkChatwootAccess } from '../chatwoot/access-check.js';
import { createChatwootClient } from '../chatwoot/client.js';
import { authorizeCommand } from './commands/authorize.js';
import { CommandIntake } from './commands/command-intake.js';
import { CommandService } from './commands/command-service.js';
import { InboxProvisioner } from './commands/inbox-provisioner.js';
import { PendingLinks, pendingLinkTtlMs } from './commands/pending-links.js';
import { createApp } from './http/app.js';
import { type AcceptedWebhook, webhookRoutes } from './http/webhook-routes.js';
import { controlErrorHandler } from './http/errors.js';
import { operatorRoutes } from './http/operator-routes.js';
import { sendRoutes } from './http/send-routes.js';
import { SendReferences } from '../outbound/send-references.js';
import { InstanceRegistry } from './registry.js';
import { coerceError } from '../lib/errors.js';
import { Journal } from '../lib/journal.js';
import { instanceKey } from '../model/instance-key.js';
import { createLogger } from '../observability/logger.js';
import { RedisKeys } from '../redis/keys.js';
import { waitForRelayed } from '../inbound/relayed-lookup.js';
import { createRedis, redisTargetEnv, resolveRedisTarget } from '../redis/connection.js';
import { SandboxRecords } from '../sandbox/records.js';
import { VERSION } from '../lib/version.js';
import { ControlPlane } from './control-plane.js';
import { InboxSecrets } from './inbox-secrets.js';
import { OutboundGateway } from './outbound-gateway.js';
import { ChatwootStartupCheck } from './chatwoot-startup-check.js';
import { buildGlobalStatus } from './status.js';
import { Supervisor } from './supervisor.js';
import { HostBus } from './host-bus.js';
import { HostRpc } from './host-rpc.js';
import { HostDirectory, MixedAuthStoresError } from './hosts.js';

/** How long a webhook waits for Redis before its event goes to the local journal (Chatwoot allows 5 s in all). */
const WEBHOOK_REDIS_BUDGET_MS = 1500;

/**
 * The primary process: configuration, Redis, the HTTP port, the instance
 * registry and its assignment to workers, supervision. It never holds a
 * WhatsApp socket.
 */
export async function runPrimary(config: Readonly<Config>): Promise<void> {
  const log = createLogger({ level: config.server.logLevel, base: { module: 'primary' } });
  log.info({ version: VERSION, config: redactConfig(config) }, 'starting Ponte');

  const redisTarget = await resolveRedisTarget(config, log);
  const redis = createRedis(redisTarget, config, { maxRetriesPerRequest: 1 });
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'));
  // Webhook intake fails fast while Redis is away, so its events go to the journal within their budget.
  const intakeRedis = createRedis(redisTarget, config, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
  intakeRedis.on('error', (err) => log.debug({ err }, 'redis connection error (webhook intake)'));
  const keys = new RedisKeys(config.redis.prefix);
  const registry = new InstanceRegistry(redis, keys);

  const count = config.server.maxWorkers > 0 ? config.server.maxWorkers : availableParallelism();
  cluster.setupPrimary({ silent: false });
  const supervisor = new Supervisor({ count, env: redisTargetEnv(redisTarget), log });
  const hostId = config.server.hostId;
  const bus = new HostBus({ redis, keys, hostId, log });
  const startedAtMs = Date.now();
  let draining = false;
  const hosts: HostDirectory = new HostDirectory({
    redis,
    keys,
    hostId,
    ttlMs: config.whatsapp.leaseTtlMs,
    log,
    report: () => ({
      pid: process.pid,
      version: VERSION,
      startedAtMs,
      authStore: config.whatsapp.authStore,
      workers: { total: supervisor.count, ready: supervisor.all().filter((w) => w.ready).length },
      draining,
      instances: control.localViews(),
    }),
  });
  const rpc: HostRpc = new HostRpc({ redis, keys, hostId, log, handle: (op, key, args, timeoutMs) => control.handleHere(op, key, args, timeoutMs) });
  const control: ControlPlane = new ControlPlane({
    registry,
    supervisor,
    log,
    staggerMs: config.whatsapp.restoreStaggerMs,
    hostId,
    hosts,
    rpc,
    placement: { redis, keys, hostId, ttlMs: config.whatsapp.leaseTtlMs, spacingMs: config.server.rebalanceSpacingMs, nudge: () => bus.nudge() },
  });
  bus.on('nudge', () => void control.placement.tick());
  const chatwoot = createChatwootClient(config);
  // In the background: a wrong URL or token keeps /readyz false and says why, and never stops the daemon.
  const chatwootCheck = new ChatwootStartupCheck({
    check: () => checkChatwootAccess(chatwoot, { baseUrl: config.chatwoot.baseUrl, requireAdministrator: false }),
    log: log.child({ module: 'chatwoot-check' }),
    minDelayMs: config.queue.outageProbeMinDelayMs,
    maxDelayMs: config.queue.outageProbeMaxDelayMs,
    defaultAccountId: config.chatwoot.defaultAccountId,
  });
  chatwootCheck.start();
  const outbound = new OutboundGateway({ redis: intakeRedis, keys, ownerOf: (key) => control.ownerOf(key) });
  const secrets = new InboxSecrets({ chatwoot, redis, keys, log: log.child({ module: 'inbox-secrets' }) });
  // A number linked anywhere: every host learns its inbox's signing secret.
  supervisor.on('event', (e) => {
    if (e.event === 'open') bus.opened(e.instanceKey);
  });
  bus.on('opened', (key) => secrets.learn(key));
  const inboxes = new InboxProvisioner({
    chatwoot,
    redis,
    keys,
    publicUrl: config.server.publicUrl,
    webhookSecret: config.webhook.secret,
    secrets,
    log: log.child({ module: 'inboxes' }),
  });
  const links = new PendingLinks({ redis, keys, ttlMs: pendingLinkTtlMs(config.whatsapp) });
  const commands = new CommandService({ config, chatwoot, control, events: supervisor, links, inboxes, log: log.child({ module: 'commands' }) });
  const intake = new CommandIntake({
    redis: intakeRedis,
    keys,
    hostId,
    hostAlive: async (id) => (await hosts.live()).some((h) => h.hostId === id),
    log: log.child({ module: 'commands' }),
    authorize: (payload, signed) =>
      authorizeCommand(payload, {
        commandInboxId: config.chatwoot.commandInboxId,
        authorizedPhones: config.webhook.authorizedPhones,
        authorizedAgentEmails: config.webhook.authorizedAgentEmails,
        signed,
        isPonteInbox: (accountId, inboxId) => Promise.resolve(registry.has(instanceKey({ accountId, inboxId }))),
        relayed: (accountId, inboxId, waId) => waitForRelayed(redis, keys, instanceKey({ accountId, inboxId }), waId),
      }),
    handle: (ctx) => commands.handle(ctx),
  });
  const journal = new Journal<AcceptedWebhook>({
    file: join(config.whatsapp.sessionsDir, 'journal', 'primary.jsonl'),
    log,
    // Idempotent both: the outbound queue dedupes by Chatwoot message id, the intake by delivery id.
    apply: async (event) => {
      if (event.kind === 'outbound') await outbound.enqueue(event.instanceKey, event.job);
      else await intake.accept(event.command);
    },
  });
  logCommandAuthority(config, log);
  supervisor.on('event', (e) => {
    if (e.event === 'alert') log.warn({ instanceId: e.instanceKey, alert: e.data.text }, 'instance alert');
    if (e.event === 'open') log.info({ instanceId: e.instanceKey, phone: e.data.phone }, 'instance linked and connected');
  });

  let shuttingDown = false;
  const app = createApp({
    log,
    version: VERSION,
    readiness: async () => {
      const redisUp = await redis.ping().then(
        (r) => r === 'PONG',
        () => false,
      );
      const cw = chatwootCheck.status;
      const checks = { redis: redisUp, workers: supervisor.all().every((w) => w.ready), chatwoot: cw.state === 'ok', notShuttingDown: !shuttingDown };
      const reasons: Record<string, string> = {};
      if (cw.state === 'failing') reasons.chatwoot = `${cw.summary}; see the log`;
      else if (cw.state === 'checking') reasons.chatwoot = 'being checked';
      return { ready: Object.values(checks).every(Boolean), checks, reasons };
    },
    routes: [
      webhookRoutes({ config, isInstance: (key) => registry.has(key), inboxSecrets: secrets, accept: (event) => journal.submit(event, WEBHOOK_REDIS_BUDGET_MS), log }),
      operatorRoutes({
        control,
        snapshot: () => buildGlobalStatus(control, supervisor, hosts, VERSION),
        sandbox: config.whatsapp.driver === 'sandbox' ? new SandboxRecords(redis, keys) : undefined,
        inboxes,
        adminToken: config.auth.adminToken,
        statusToken: config.auth.statusToken,
        sendToken: config.auth.sendToken,
        publicUrl: config.server.publicUrl,
        importDays: config.inbound.historyImportDays,
      }),
      sendRoutes({
        control,
        enqueue: (key, job) => outbound.enqueue(key, job),
        statusOf: (key, messageId) => new SendReferences(redis, keys, key).statusOf(messageId),
        status: (key, reference) => new SendReferences(redis, keys, key).status(reference),
        mediaTimeoutMs: config.outbound.mediaTimeoutMs,
        sendToken: config.auth.sendToken,
        adminToken: config.auth.adminToken,
        statusToken: config.auth.statusToken,
      }),
    ],
    errorHandlers: [controlErrorHandler],
  });

  await bus.start();
  await hosts.join();
  await refuseMixedAuthStores(hosts, config, log);
  rpc.start();
  supervisor.start();
  await control.placement.start();
  await secrets.load((await registry.list()).map((r) => r.instanceKey));
  await journal.open();
  await intake.resume();
  const server: Server = app.listen(config.server.port, config.server.host);
  await once(server, 'listening');
  log.info({ port: config.server.port, host: config.server.host, workers: count, driver: config.whatsapp.driver }, 'HTTP listening');
  if (config.whatsapp.driver === 'sandbox') log.warn('WHATSAPP_DRIVER=sandbox: simulated WhatsApp accounts, no real numbers');

  const shutdown = async (signal: string, exitCode = 0): Promise<void> => {
    if (shuttingDown) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    shuttingDown = true;
    log.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      log.error('shutdown deadline passed: exiting');
      log.flush();
      process.exit(1);
    }, config.server.shutdownTimeoutMs);
    deadline.unref();
    // Commands in flight first (they may need the workers), then the workers
    // (their sessions end, in-flight deliveries finish), while the listener
    // keeps accepting; then the listener, the journal, then Redis.
    const budget = config.server.shutdownTimeoutMs;
    if (!(await intake.drain(Math.floor(budget / 4)))) log.warn({ commands: intake.running }, 'commands still running at shutdown: they run again at the next start');
    // Hand the numbers over: take no more, stop the sessions (their leases
    // freed), then free the placements so the other hosts open them at once.
    draining = true;
    await hosts.beat().catch(() => undefined);
    await control.placement.drain(() => supervisor.stop(Math.max(1000, Math.floor(budget / 2)))).catch((err: unknown) => log.warn({ err }, 'could not hand the numbers over: the other hosts take them when their placements expire'));
    await hosts.leave().catch(() => undefined);
    await rpc.close();
    await bus.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    if (!(await journal.drain(2000))) log.warn({ entries: journal.pending }, 'journal not empty at shutdown: replayed at the next start');
    await journal.close();
    chatwootCheck.close();
    secrets.close();
    await outbound.close();
    await Promise.all([redis.quit().catch(() => undefined), intakeRedis.quit().catch(() => undefined)]);
    log.info('stopped');
    log.flush();
    process.exit(exitCode);
  };
  process.on('SIGTERM', (s) => void shutdown(s));
  process.on('SIGINT', (s) => void shutdown(s));
  // A bug that escapes every handler: log it and stop through the normal shutdown, exiting non-zero (pm2 restarts it).
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: coerceError(reason) }, 'unhandled rejection: Ponte stopping');
    void shutdown('fatal error', 1);
  });
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception: Ponte stopping');
    void shutdown('fatal error', 1);
  });
  // pm2 wait_ready: signal once every worker is up (or after a minute, so pm2 does not hang on a broken worker).
  if (process.send) {
    const signalReady = () => process.send?.('ready');
    if (supervisor.all().every((w) => w.ready)) signalReady();
    else {
      const giveUp = setTimeout(signalReady, 60_000);
      giveUp.unref();
      const onReady = () => {
        if (!supervisor.all().every((w) => w.ready)) return;
        clearTimeout(giveUp);
        supervisor.off('ready', onReady);
        signalReady();
      };
      supervisor.on('ready', onReady);
    }
  }
}

/**
 * Several hosts on one prefix move numbers between them, which only auth
 * state in Redis allows: a file store on any of them would need a new QR
 * after each move. Refuses to start rather than mix them.
 */
async function refuseMixedAuthStores(hosts: HostDirectory, config: Readonly<Config>, log: ReturnType<typeof createLogger>): Promise<void> {
  const others = (await hosts.live()).filter((h) => h.hostId !== hosts.hostId);
  if (others.length === 0) return;
  const file = [...others.filter((h) => h.authStore === 'file').map((h) => h.hostId), ...(config.whatsapp.authStore === 'file' ? [hosts.hostId] : [])];
  if (file.length === 0) return;
  log.fatal({ hosts: others.map((h) => h.hostId), fileStore: file }, 'several hosts share this Redis prefix but some keep auth state in files');
  await hosts.leave();
  throw new MixedAuthStoresError(`hosts ${[hosts.hostId, ...others.map((h) => h.hostId)].join(', ')} share REDIS_PREFIX=${config.redis.prefix}; numbers move between them, so every host needs AUTH_STORE=redis (now file on ${file.join(', ')}). Migrate with "npm run instance -- migrate-auth redis", or give each host its own REDIS_PREFIX`);
}

/** Says at start-up who can give commands (DESIGN.md, Decisions 8), and what keeps anyone from doing so. */
function logCommandAuthority(config: Readonly<Config>, log: ReturnType<typeof createLogger>): void {
  const inbox = config.chatwoot.commandInboxId;
  const phones = config.webhook.authorizedPhones;
  const agents = config.webhook.authorizedAgentEmails;
  const signed = config.chatwoot.accountWebhookSecret !== undefined;
  log.info(
    {
      phones: phones.map((p) => `+${p}`),
      phoneInboxes: inbox === 0 ? 'any Ponte inbox of the account' : `inbox ${inbox} (a Ponte inbox)`,
      agents: signed ? agents : [],
      agentInboxes: 'any inbox of the account (private notes and outgoing messages)',
    },
    'commands are accepted from these WhatsApp numbers, through messages Ponte relayed, and from these Chatwoot agents',
  );
  if (phones.length === 0 && (agents.length === 0 || !signed)) log.warn('nobody can give commands: set WEBHOOK_AUTHORIZED_PHONE_NUMBERS, or WEBHOOK_AUTHORIZED_AGENT_EMAILS with CHATWOOT_ACCOUNT_WEBHOOK_SECRET');
  if (agents.length > 0 && !signed) log.warn('WEBHOOK_AUTHORIZED_AGENT_EMAILS is set but CHATWOOT_ACCOUNT_WEBHOOK_SECRET is not: unsigned deliveries never authorize an agent, so agents cannot give commands');
}
