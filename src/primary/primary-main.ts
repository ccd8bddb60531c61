import cluster from 'node:cluster';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { availableParallelism } from 'node:os';
import { redactConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ChatwootClient } from '../chatwoot/client.js';
import { CommandService } from '../commands/command-service.js';
import { createApp } from '../http/app.js';
import { webhookRoutes } from '../http/webhook-routes.js';
import { controlErrorHandler, operatorRoutes } from '../http/operator-routes.js';
import { InstanceRegistry } from '../instances/registry.js';
import { createLogger } from '../observability/logger.js';
import { RedisKeys } from '../queue/keys.js';
import { createRedis, resolveRedisUrl } from '../redis/connection.js';
import { VERSION } from '../version.js';
import { ControlPlane } from './control-plane.js';
import { OutboundGateway } from './outbound-gateway.js';
import { Supervisor } from './supervisor.js';

/**
 * The primary process: configuration, Redis, the HTTP port, the instance
 * registry and its assignment to workers, supervision. It never holds a
 * WhatsApp socket.
 */
export async function runPrimary(config: Readonly<Config>): Promise<void> {
  const log = createLogger({ level: config.server.logLevel, base: { module: 'primary' } });
  log.info({ version: VERSION, config: redactConfig(config) }, 'starting Ponte');

  const redisUrl = await resolveRedisUrl(config, log);
  const redis = createRedis(redisUrl, config, { maxRetriesPerRequest: 1 });
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'));
  const keys = new RedisKeys(config.redis.prefix);
  const registry = new InstanceRegistry(redis, keys);

  const count = config.server.maxWorkers > 0 ? config.server.maxWorkers : availableParallelism();
  cluster.setupPrimary({ silent: false });
  const supervisor = new Supervisor({ count, env: { REDIS_URL: redisUrl }, log });
  const control = new ControlPlane({ registry, supervisor, redis, keys, log, staggerMs: config.whatsapp.restoreStaggerMs });
  const chatwoot = new ChatwootClient({ baseUrl: config.chatwoot.baseUrl, apiAccessToken: config.chatwoot.apiAccessToken, timeoutMs: config.chatwoot.timeoutMs });
  const outbound = new OutboundGateway({ redis, keys, chatwoot, log });
  supervisor.on('event', (e) => {
    if (e.event === 'open' && !outbound.inboxSecret(e.instanceKey)) void outbound.learnSecret(e.instanceKey);
  });
  const commands = new CommandService({ config, chatwoot, control, registry, supervisor, log: log.child({ module: 'commands' }) });
  if (config.chatwoot.commandInboxId === 0) {
    log.warn('DEFAULT_RELAY_CHATWOOT_INBOX_ID=0: commands are read from every inbox of the account; set it to the command inbox');
  }
  if (config.webhook.authorizedPhones.length === 0) log.warn('WEBHOOK_AUTHORIZED_PHONE_NUMBERS is empty: nobody can give commands');
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
      const checks = { redis: redisUp, workers: supervisor.all().every((w) => w.ready), notShuttingDown: !shuttingDown };
      return { ready: Object.values(checks).every(Boolean), checks };
    },
    routes: [
      webhookRoutes({ config, redis, keys, registry, commands, log, outbound }),
      operatorRoutes({
        control,
        supervisor,
        sandbox: config.whatsapp.driver === 'sandbox',
        adminToken: config.auth.adminToken,
        statusToken: config.auth.statusToken,
        version: VERSION,
        publicUrl: config.server.publicUrl,
      }),
    ],
    errorHandlers: [controlErrorHandler],
  });

  supervisor.start();
  await control.restore();
  await Promise.all((await registry.list()).map((r) => outbound.learnSecret(r.instanceKey)));
  const server: Server = app.listen(config.server.port, config.server.host);
  await once(server, 'listening');
  log.info({ port: config.server.port, host: config.server.host, workers: count, driver: config.whatsapp.driver }, 'HTTP listening');
  if (config.whatsapp.driver === 'sandbox') log.warn('WHATSAPP_DRIVER=sandbox: simulated WhatsApp accounts, no real numbers');

  const shutdown = async (signal: string): Promise<void> => {
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
    // Workers first (their sessions end, in-flight deliveries finish), while
    // the listener keeps accepting; then the listener, then Redis.
    await supervisor.stop(Math.max(1000, config.server.shutdownTimeoutMs - 2000));
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    await outbound.close();
    await redis.quit().catch(() => undefined);
    log.info('stopped');
    log.flush();
    process.exit(0);
  };
  process.on('SIGTERM', (s) => void shutdown(s));
  process.on('SIGINT', (s) => void shutdown(s));
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
