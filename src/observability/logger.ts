import pino, { type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config/schema.js';

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
  'config.headers.api_access_token',
  'err.config.headers.api_access_token',
  'err.config.data',
  'err.response.config.headers.api_access_token',
];

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
      serializers: { err: pino.stdSerializers.err },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination,
  );
}
