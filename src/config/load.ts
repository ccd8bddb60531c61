import { existsSync } from 'node:fs';
import dotenv from 'dotenv';
import type { z } from 'zod';
import { AppError } from '../lib/errors.js';
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
    const name = issue.path.map(String).join('.') || '(environment)';
    return `${name}: ${issue.message}`;
  });
}

/**
 * Validates the whole environment at once and returns the compiled, deeply
 * frozen configuration. Throws a {@link ConfigError} that lists every missing
 * or bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined> = process.env): Readonly<Config> {
  // Empty strings mean "not set": `FOO=` in a .env file should fall back to the default.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = EnvSchema.safeParse(cleaned);
  if (!result.success) throw new ConfigError(describeIssues(result.error.issues));
  return deepFreeze(compileConfig(result.data));
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
  return copy;
}

export function redactUrlCredentials(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = 'redacted';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
