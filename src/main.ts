import { once } from 'node:events';
import type { Server } from 'node:http';
import { ConfigError, loadConfig, loadDotenv, redactConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { createApp } from './http/app.js';
import { coerceError } from './lib/errors.js';
import { createLogger } from './observability/logger.js';
import { createRedis, resolveRedisUrl } from './redis/connection.js';
import { VERSION } from './version.js';

function explainConfigError(error: ConfigError, dotenvFound: boolean): string {
  const lines = [
    'Ponte cannot start: its configuration is incomplete or invalid.',
    '',
    ...error.problems.map((p) => `  - ${p}`),
    '',
    dotenvFound
      ? 'Fix these in .env (or the environment) and start again.'
      : 'No .env file was found. Copy .env.example to .env, set at least CHATWOOT_BASE_URL, CHATWOOT_API_ACCESS_TOKEN and WEBHOOK_SECRET, and start again.',
    'Every variable, its default and its unit is documented in .env.example and in the README.',
  ];
  return lines.join('\n');
}

async function run(config: Readonly<Config>): Promise<void> {
  const log = createLogger({ level: config.server.logLevel, base: { module: 'main' } });
  log.info({ version: VERSION, config: redactConfig(config) }, 'starting Ponte');

  const redisUrl = await resolveRedisUrl(config, log);
  const redis = createRedis(redisUrl, config, { maxRetriesPerRequest: 1 });
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'));

  let shuttingDown = false;
  const app = createApp({
    log,
    version: VERSION,
    readiness: async () => {
      const redisUp = await redis.ping().then(
        (r) => r === 'PONG',
        () => false,
      );
      const checks = { redis: redisUp, notShuttingDown: !shuttingDown };
      return { ready: Object.values(checks).every(Boolean), checks };
    },
  });
  const server: Server = app.listen(config.server.port, config.server.host);
  await once(server, 'listening');
  log.info({ port: config.server.port, host: config.server.host }, 'HTTP listening');

  const shutdown = async (signal: string) => {
    if (shuttingDown) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    shuttingDown = true;
    log.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      log.error('shutdown deadline passed: exiting');
      process.exit(1);
    }, config.server.shutdownTimeoutMs);
    deadline.unref();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await redis.quit().catch(() => undefined);
    log.info('stopped');
    log.flush();
  };
  process.on('SIGTERM', (s) => void shutdown(s));
  process.on('SIGINT', (s) => void shutdown(s));
}

const dotenvFound = loadDotenv();
let config: Readonly<Config>;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${explainConfigError(err, dotenvFound)}\n`);
    process.exit(1);
  }
  throw err;
}
run(config).catch((err: unknown) => {
  const e = coerceError(err);
  process.stderr.write(`Ponte failed to start: ${e.message}\n`);
  if (e.cause) process.stderr.write(`  cause: ${coerceError(e.cause).message}\n`);
  process.exit(1);
});
