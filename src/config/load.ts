/** Reads `.env` and the environment into the validated configuration, and redacts it for logs. */
import { existsSync } from 'node:fs';
import dotenv from 'dotenv';
import type { z } from 'zod';
import { AppError } from '../lib/errors.js';
import { parseUrl } from '../lib/parse.js';
import { compileConfig, EnvSchema, type Config } from './schema.js';

/** One line per problem, naming the variable: "CHATWOOT_BASE_URL: is required". */
export class ConfigError extends AppError {
  readonly code = 'CONFIG_INVALID';

  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    // List entries are named by their variable and position: "GROUPS_IGNORED: must be … (entry 2)".
    const [name, ...rest] = issue.path.map(String);
    const entry = rest.length > 0 && /^\d+$/.test(rest[0]!) ? ` (entry ${Number(rest[0]) + 1})` : '';
    return `${name ?? '(environment)'}: ${issue.message}${entry}`;
  });
}

/**
 * Validates the whole environment at once and returns the compiled, deeply
 * frozen configuration. Throws a {@link ConfigError} that lists every missing
 * or bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined> = process.env): Readonly<Config> {
  // Empty strings mean "not set": `FOO=` in a .env file should fall back to the default.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')) as Record<string, string>;
  const result = EnvSchema.safeParse(cleaned);
  const problems = [...(result.success ? [] : describeIssues(result.error.issues)), ...crossChecks(cleaned)];
  if (!result.success || problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(compileConfig(result.data));
}

/** True for an address only this host can reach: `127.0.0.0/8`, `::1`, `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/** Rules between variables (DESIGN.md, Decisions 16): each token has one role, and a listener beyond loopback needs the admin token. */
function crossChecks(env: Record<string, string>): string[] {
  const problems: string[] = [];
  const host = env.SERVER_HOST?.trim() || '0.0.0.0';
  if (!env.ADMIN_TOKEN && !isLoopbackHost(host)) {
    problems.push(`ADMIN_TOKEN: is required when SERVER_HOST (${host}) is not a loopback address; set it (at least 16 characters, e.g. openssl rand -hex 24) or listen on SERVER_HOST=127.0.0.1`);
  }
  problems.push(...redisTargetChecks(env));
  const spacingMin = Number(env.SEND_SPACING_MIN_MS ?? 1000);
  const spacingMax = Number(env.SEND_SPACING_MAX_MS ?? 5000);
  if (spacingMax < spacingMin) problems.push(`SEND_SPACING_MAX_MS: must be at least SEND_SPACING_MIN_MS (${spacingMin})`);
  const tokens: Array<[string, string | undefined]> = [
    ['WEBHOOK_SECRET', env.WEBHOOK_SECRET],
    ['ADMIN_TOKEN', env.ADMIN_TOKEN],
    ['STATUS_TOKEN', env.STATUS_TOKEN],
    ['SEND_TOKEN', env.SEND_TOKEN],
  ];
  for (let i = 0; i < tokens.length; i++) {
    for (let j = i + 1; j < tokens.length; j++) {
      const [a, va] = tokens[i]!;
      const [b, vb] = tokens[j]!;
      if (va !== undefined && vb !== undefined && va.trim() === vb.trim()) problems.push(`${b}: must differ from ${a} (each token has one role)`);
    }
  }
  return problems;
}

/** One Redis target: REDIS_URL or REDIS_SENTINELS (with its master group name), never both. */
function redisTargetChecks(env: Record<string, string>): string[] {
  const set = (name: string) => (env[name]?.trim() ?? '') !== '';
  const problems: string[] = [];
  if (set('REDIS_SENTINELS')) {
    if (set('REDIS_URL')) problems.push('REDIS_SENTINELS: cannot be combined with REDIS_URL; set REDIS_URL for one Redis server, or REDIS_SENTINELS and REDIS_SENTINEL_NAME for Redis behind Sentinel');
    if (!set('REDIS_SENTINEL_NAME')) problems.push('REDIS_SENTINEL_NAME: is required when REDIS_SENTINELS is set (the master group name, as in `sentinel monitor <name> …`)');
  } else {
    for (const name of ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD']) if (set(name)) problems.push(`${name}: applies only with REDIS_SENTINELS, which is not set`);
  }
  return problems;
}

/** Reads `.env` (when present) into `process.env` without overriding what the environment already sets. */
export function loadDotenv(path = '.env'): boolean {
  if (!existsSync(path)) return false;
  dotenv.config({ path, quiet: true });
  return true;
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const SECRET_PATHS: ReadonlyArray<readonly [keyof Config, string]> = [
  ['chatwoot', 'apiAccessToken'],
  ['chatwoot', 'accountWebhookSecret'],
  ['webhook', 'secret'],
  ['auth', 'statusToken'],
  ['auth', 'adminToken'],
  ['auth', 'sendToken'],
  ['redis', 'password'],
];

/** A copy of the configuration that is safe to log: secrets become "[redacted]", credentials leave the Redis URL. */
export function redactConfig(config: Readonly<Config>): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(config)) as Record<string, Record<string, unknown>>;
  for (const [group, key] of SECRET_PATHS) {
    const section = copy[group];
    if (section && section[key] !== undefined && section[key] !== null) section[key] = '[redacted]';
  }
  const redis = copy.redis;
  if (redis && typeof redis.url === 'string') redis.url = redactUrlCredentials(redis.url);
  const sentinel = redis?.sentinel as Record<string, unknown> | null | undefined;
  if (sentinel && sentinel.password !== undefined && sentinel.password !== null) sentinel.password = '[redacted]';
  return copy;
}

export function redactUrlCredentials(url: string): string {
  const u = parseUrl(url);
  if (!u) return '[unparseable url]';
  if (u.password) u.password = 'redacted';
  return u.toString();
}
