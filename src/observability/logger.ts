/** The daemon's pino logger: one per process, children per module, with redaction and an allow-list for errors. */
import pino, { type Logger, type DestinationStream } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type { Logger } from 'pino';

/**
 * Paths pino blanks before a line is written. Credentials and message bodies
 * never reach the logs, whichever module logs them.
 */
export const REDACT_PATHS: readonly string[] = [
  'apiAccessToken',
  'api_access_token',
  'token',
  'secret',
  'password',
  'authorization',
  'content',
  'text',
  'caption',
  '*.apiAccessToken',
  '*.api_access_token',
  '*.token',
  '*.secret',
  '*.password',
  '*.authorization',
  '*.webhookSecret',
  '*.statusToken',
  '*.adminToken',
  '*.authStoreKey',
  '*.content',
  '*.text',
  '*.caption',
  'headers.api_access_token',
  'headers.authorization',
  'headers["x-ponte-token"]',
  'headers["x-chatwoot-signature"]',
  '*.headers.api_access_token',
  '*.headers.authorization',
  '*.headers["x-ponte-token"]',
];

/** Fields of an error that may reach a log line; anything else (a request's headers, body or socket an HTTP client's error carries) never does. */
const ERROR_FIELDS = ['code', 'kind', 'status', 'statusCode', 'method', 'route', 'reason', 'retryable', 'url', 'errno', 'syscall'] as const;

export interface LoggedError {
  type: string;
  message: string;
  stack?: string;
  cause?: LoggedError;
  [field: string]: unknown;
}

/**
 * The `err` serializer: an allow-list, so a future log line cannot leak a
 * token an error happens to carry (an HTTP client's error may hold the
 * request it failed on, the Chatwoot access token among its headers; a
 * response error, the headers and body of the answer). Only primitive
 * values of the listed fields are kept; causes follow, to a depth of four.
 */
export function serializeErrorForLog(value: unknown, depth = 0): LoggedError {
  if (!(value instanceof Error)) return { type: typeof value, message: typeof value === 'string' ? value : '[not an Error]' };
  const out: LoggedError = { type: value.name, message: value.message };
  if (value.stack) out.stack = value.stack;
  const fields = value as unknown as Record<string, unknown>;
  for (const f of ERROR_FIELDS) {
    const v = fields[f];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[f] = v;
  }
  if (value.cause !== undefined && depth < 4) out.cause = serializeErrorForLog(value.cause, depth + 1);
  return out;
}

export interface LoggerOptions {
  level: LogLevel;
  name?: string;
  /** Where lines go; stdout when omitted. Tests pass a collecting stream. */
  destination?: DestinationStream;
  base?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name ?? 'ponte',
      level: options.level,
      base: { pid: process.pid, ...options.base },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      serializers: { err: serializeErrorForLog },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination,
  );
}
