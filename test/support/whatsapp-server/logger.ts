/**
 * Baileys-shaped loggers for tests: one that discards everything, one that
 * prints to stderr (for debugging a run), and one that records entries so a
 * test can wait for what Baileys logs about a transition it emits no event for.
 */
import type { ILogger } from '@whiskeysockets/baileys/lib/Utils/logger.js';
import { Inbox } from './inbox.js';

export type { ILogger };

export const silentLogger: ILogger = {
  level: 'silent',
  child: () => silentLogger,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
type Level = (typeof LEVELS)[number];

/** Prints entries at `level` and above as one line each on stderr. */
export function consoleLogger(level: Level = 'debug', bindings: Record<string, unknown> = {}): ILogger {
  const min = LEVELS.indexOf(level);
  const at = (l: Level) => (obj: unknown, msg?: string) => {
    if (LEVELS.indexOf(l) < min) return;
    const text = typeof obj === 'string' ? obj : JSON.stringify({ ...bindings, ...(obj as object) }, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v));
    process.stderr.write(`[${l}] ${msg ?? ''} ${text}\n`);
  };
  return {
    level,
    child: (obj) => consoleLogger(level, { ...bindings, ...obj }),
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

/** One log entry: its level, message and context object (or the string logged alone). */
export interface LogEntry {
  level: Level;
  msg: string | undefined;
  obj: unknown;
}

/** A logger (and its children) whose entries go to `entries` and then to `inner`. */
export function recordingLogger(inner: ILogger = silentLogger): { logger: ILogger; entries: Inbox<LogEntry> } {
  const entries = new Inbox<LogEntry>('log entries');
  const wrap = (target: ILogger): ILogger => {
    const at = (level: Level) => (obj: unknown, msg?: string) => {
      entries.push({ level, msg: msg ?? (typeof obj === 'string' ? obj : undefined), obj });
      target[level](obj, msg);
    };
    return {
      // Not 'trace': rc14 renders every frame as text for trace loggers.
      level: 'debug',
      child: (bindings) => wrap(target.child(bindings)),
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
    };
  };
  return { logger: wrap(inner), entries };
}
