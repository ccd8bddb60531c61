/** Ponte's entry point: reads the configuration, then runs as the primary or as one of its workers. */
import cluster from 'node:cluster';
import { ConfigError, loadConfig, loadDotenv } from './config/load.js';
import type { Config } from './config/schema.js';
import { coerceError } from './lib/errors.js';

function explainConfigError(error: ConfigError, dotenvFound: boolean): string {
  const lines = [
    'Ponte cannot start: its configuration is incomplete or invalid.',
    '',
    ...error.problems.map((p) => `  - ${p}`),
    '',
    dotenvFound
      ? 'Fix these in .env (or the environment) and start again.'
      : 'No .env file was found. Run npm run setup (it asks for Chatwoot\'s URL and token and writes one), or copy .env.example to .env, set at least CHATWOOT_BASE_URL, CHATWOOT_API_ACCESS_TOKEN, WEBHOOK_SECRET and ADMIN_TOKEN (or SERVER_HOST=127.0.0.1), and start again.',
    'Every variable, its default and its unit is documented in .env.example and in the README.',
  ];
  return lines.join('\n');
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
// One entry point: the primary forks workers of this same file (node:cluster).
// Each role loads only its own code: the primary never loads the WhatsApp driver.
const role = cluster.isPrimary
  ? import('./primary/primary-main.js').then(({ runPrimary }) => runPrimary(config))
  : import('./worker/worker-main.js').then(({ runWorker }) => runWorker(config, process.ppid));
role.catch((err: unknown) => {
  const e = coerceError(err);
  process.stderr.write(`Ponte failed to start: ${e.message}\n`);
  if (e.cause) process.stderr.write(`  cause: ${coerceError(e.cause).message}\n`);
  process.exit(1);
});
