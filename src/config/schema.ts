/** Every environment variable Ponte reads, its default and unit, and the configuration compiled from them. */
import { hostname } from 'node:os';
import { z } from 'zod';
import { parseSealKey } from '../lib/seal.js';
import { BOT_OPTIONS_STYLES, type BotOptionsStyle } from '../model/bot-question.js';
import { MAX_IMPORT_DAYS } from '../model/history-import.js';
import { LOG_LEVELS, type LogLevel } from '../observability/logger.js';

/**
 * The environment Ponte reads, validated once at start-up. Names are the
 * operators' own (see `.env.example`, which documents each with its default
 * and unit). `compileConfig` turns the raw variables into {@link Config}.
 */


const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));
const secret = (minLength: number) =>
  z
    .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
    .min(minLength, `must be at least ${minLength} characters`);
const httpUrl = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .url('must be an http(s) URL')
  .refine((v) => /^https?:\/\//i.test(v), 'must be an http(s) URL')
  .transform((v) => v.replace(/\/+$/, ''));

/** Phone numbers as digits only; `+55 (21) 99876-5432` and `5521998765432` are the same entry. */
const phoneList = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(/[,;\n]+/)
      .map((p) => p.replace(/\D/g, ''))
      .filter((p) => p.length > 0),
  );

/** E-mail addresses, lower-cased (Chatwoot compares them case-insensitively). */
const emailList = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(/[,;\s]+/)
      .map((e) => e.trim().toLowerCase())
      .filter((e) => e !== ''),
  )
  .pipe(z.array(z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must be e-mail addresses, comma-separated')));

/** Host names Ponte may download agent attachments from: `host`, `host:port`, or `*.domain` for its subdomains. */
const hostList = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(/[,\s]+/)
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== ''),
  )
  .pipe(z.array(z.string().regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/, 'must be host names (host, host:port or *.domain), comma-separated')));

/** One Sentinel's address, `host:port`; an IPv6 address goes in brackets, `[::1]:26379`. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

/** The Sentinels to ask for the Redis master, comma-separated `host:port` entries. */
const sentinelList = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(/[,\s]+/)
      .map((a) => a.trim())
      .filter((a) => a !== ''),
  )
  .pipe(
    z.array(
      z
        .string()
        .regex(HOST_PORT, 'must be host:port entries, comma-separated (IPv6 in brackets: [::1]:26379)')
        .refine((a) => {
          // Checked only on entries of the right shape, which the regex above already names.
          const port = Number(a.slice(a.lastIndexOf(':') + 1));
          return !HOST_PORT.test(a) || (port >= 1 && port <= 65535);
        }, 'must have a port from 1 to 65535'),
    ),
  )
  .transform((list): SentinelAddress[] =>
    list.map((a) => {
      const at = a.lastIndexOf(':');
      return { host: a.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(a.slice(at + 1)) };
    }),
  );

/** An operator token: one role each, long enough not to be guessed. */
const token = optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional());

export const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),

  SERVER_PORT: int(0, 65535).default(3000),
  SERVER_HOST: z.string().default('0.0.0.0'),
  SERVER_LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  PUBLIC_URL: httpUrl.optional(),
  MAX_WORKERS: int(0, 256).default(0),
  SHUTDOWN_TIMEOUT_MS: int(1000).default(25_000),
  HOST_ID: optionalString.pipe(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1 to 64 letters, digits, dots, dashes or underscores').optional()),
  HOST_REBALANCE_SPACING_MS: int(0).default(5000),

  WHATSAPP_DRIVER: z.enum(['baileys', 'sandbox']).default('baileys'),
  WHATSAPP_WS_URL: z
    .string()
    .regex(/^wss?:\/\/[^\s]+$/, 'must be a ws:// or wss:// URL')
    .default('wss://web.whatsapp.com/ws/chat'),
  BAILEYS_AUTH_SESSIONS_PARENT_DIR: z.string().min(1).default('sessions'),
  AUTH_STORE: z.enum(['file', 'redis']).default('file'),
  AUTH_STORE_KEY: optionalString.refine((v) => v === undefined || parseSealKey(v) !== undefined, 'must be 32 random bytes as 64 hex characters or base64 (openssl rand -hex 32)'),
  BAILEYS_BROWSER_NAME: z.string().min(1).default('Ponte'),
  BAILEYS_LOG_LEVEL_INSTANCE: z.enum(LOG_LEVELS).default('warn'),
  BAILEYS_RECONNECT_DELAY_MS: int(0).default(2000),
  BAILEYS_MAX_QR_SEND_ATTEMPTS: int(1, 50).default(5),
  INSTANCE_LEASE_TTL_MS: int(1000).default(15_000),
  RESTORE_STAGGER_MS: int(0).default(200),
  SANDBOX_QR_INTERVAL_MS: int(50).default(20_000),
  /** Internal: set by the primary on the workers it forks. */
  PONTE_WORKER_SLOT: int(0, 1024).optional(),

  CHATWOOT_BASE_URL: httpUrl,
  CHATWOOT_API_ACCESS_TOKEN: secret(1),
  CHATWOOT_API_TIMEOUT: int(100).default(15_000),
  DEFAULT_CHATWOOT_ACCOUNT_ID: int(1).optional(),
  DEFAULT_RELAY_CHATWOOT_INBOX_ID: int(0).default(0),
  CHATWOOT_ACCOUNT_WEBHOOK_SECRET: optionalString,

  WEBHOOK_SECRET: secret(16),
  WEBHOOK_COMMAND_KEYWORD: z
    .string()
    .default('erga')
    .transform((v) => v.trim().toLowerCase())
    .pipe(z.string().regex(/^\S+$/, 'must be one word')),
  WEBHOOK_AUTHORIZED_PHONE_NUMBERS: phoneList,
  WEBHOOK_AUTHORIZED_AGENT_EMAILS: emailList,
  WEBHOOK_SIGNATURE_MAX_AGE_S: int(1).default(300),
  WEBHOOK_REQUIRE_SIGNATURE: bool.default(true),
  STATUS_TOKEN: token,
  ADMIN_TOKEN: token,

  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
    .optional(),
  REDIS_USER: optionalString,
  REDIS_PASSWORD: optionalString,
  // Redis behind Sentinel (issue 21): REDIS_URL or these, never both (checked in load.ts with the other rules between variables).
  REDIS_SENTINELS: sentinelList,
  REDIS_SENTINEL_NAME: optionalString.pipe(z.string().regex(/^\S+$/, 'must be one word (the master group name Sentinel monitors)').optional()),
  REDIS_SENTINEL_PASSWORD: optionalString,
  REDIS_PREFIX: z
    .string()
    .default('ponte:')
    .refine((v) => /^[A-Za-z0-9_.:-]+$/.test(v), 'may hold only letters, digits and _ . : -'),

  INBOUND_MEDIA_MAX_BYTES: int(1024).default(64 * 1024 * 1024),
  HISTORY_IMPORT_DAYS: int(0, MAX_IMPORT_DAYS).default(7),
  CALLS_REJECT: bool.default(false),
  GROUPS_IGNORED: z
    .string()
    .default('')
    .transform((v) => v.split(/[,\s]+/).filter((x) => x !== ''))
    .pipe(z.array(z.string().regex(/^(all|[1-9]\d{0,9}-[1-9]\d{0,9})$/, 'must be "all" or instance keys like 1-12'))),
  OUTBOUND_MEDIA_MAX_BYTES: int(1024).default(64 * 1024 * 1024),
  OUTBOUND_MEDIA_HOSTS: hostList,
  OUTBOUND_MEDIA_TIMEOUT_MS: int(1000).default(120_000),
  OUTBOUND_AGENT_SIGNATURE: bool.default(false),
  OUTBOUND_MARK_READ: bool.default(true),
  OUTBOUND_MAX_WAIT_MS: int(1000).default(10 * 60_000),

  // Chatwoot bot messages (issue 20): how a question's options go out.
  BOT_OPTIONS_STYLE: z.enum(BOT_OPTIONS_STYLES as [BotOptionsStyle, ...BotOptionsStyle[]]).default('text'),

  // Sending that keeps a number safe (issue 20): limits on messages to people who have not written in 24 h.
  NEW_CHAT_SENDS_PER_HOUR: int(1, 100_000).default(30),
  SENDS_PER_MINUTE: int(1, 10_000).default(20),
  SEND_SPACING_MIN_MS: int(0, 600_000).default(1000),
  SEND_SPACING_MAX_MS: int(0, 600_000).default(5000),
  REACHOUT_LOCK_DEFAULT_MS: int(60_000).default(3_600_000),
  OPT_OUT_KEYWORDS: z
    .string()
    .default('SAIR,PARAR,STOP')
    .transform((v) => v.split(',').map((k) => k.trim()).filter((k) => k !== '')),
  OPT_OUT_REPLY: z
    .string()
    .default('Pronto, você não receberá mais mensagens nossas. Para voltar, é só escrever. / Done, you will get no more messages from us; write to us any time to undo.')
    .transform((v) => v.trim()),
  OUTBOUND_TYPING: bool.default(false),

  CHATWOOT_QUEUE_WORKER_LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  CHATWOOT_QUEUE_CONCURRENCY: int(1, 1000).default(10),
  BULLMQ_JOB_ATTEMPTS: int(1, 100).default(5),
  BULLMQ_JOB_BACKOFF_DELAY: int(0).default(2000),
  BULLMQ_LOCK_DURATION_MS: int(1000).default(30_000),
  BULLMQ_STALLED_INTERVAL_MS: int(1000).default(30_000),
  OUTAGE_PROBE_MIN_DELAY_MS: int(10).default(1000),
  OUTAGE_PROBE_MAX_DELAY_MS: int(100).default(60_000),
  RATE_LIMIT_BACKOFF_MS: int(10).default(15_000),

  // The send API (issue 20): its own bearer token, and numbers the sandbox says are not on WhatsApp.
  SEND_TOKEN: token,
  SANDBOX_NOT_ON_WHATSAPP: phoneList,
});

/** Where one Sentinel listens. */
export interface SentinelAddress {
  host: string;
  port: number;
}

export type RawEnv = z.input<typeof EnvSchema>;
export type ParsedEnv = z.output<typeof EnvSchema>;
export type { LogLevel };

/** Validated, compiled configuration. Frozen by `loadConfig` and passed down; nothing else reads `process.env`. */
export interface Config {
  env: ParsedEnv['NODE_ENV'];
  server: {
    port: number;
    host: string;
    logLevel: LogLevel;
    /** Where Chatwoot reaches Ponte, used to tell operators the inbox webhook URL. */
    publicUrl: string | undefined;
    /** Cluster workers; 0 means one per available core. */
    maxWorkers: number;
    shutdownTimeoutMs: number;
    /** Set in workers only: which worker slot this process is. */
    workerSlot: number | undefined;
    /** This host among the hosts sharing one Redis prefix (`HOST_ID`, default the host name). */
    hostId: string;
    /** Least time between two numbers this host hands to a host below its share. */
    rebalanceSpacingMs: number;
  };
  whatsapp: {
    driver: 'baileys' | 'sandbox';
    /** The WebSocket URL Baileys connects to: WhatsApp's own, or a test server. */
    wsUrl: string;
    sessionsDir: string;
    /** Where auth state lives: files under sessionsDir (one host) or Redis (several hosts). */
    authStore: 'file' | 'redis';
    /** AES-256-GCM key sealing the Redis auth store's values (hex or base64 text, validated). */
    authStoreKey: string | undefined;
    browserName: string;
    logLevel: LogLevel;
    reconnectDelayMs: number;
    maxQrSendAttempts: number;
    /** How long an instance's lease outlives a dead owner. */
    leaseTtlMs: number;
    /** Delay between instance starts when many are restored at once. */
    restoreStaggerMs: number;
    /** Sandbox driver: time between QR codes. */
    sandboxQrIntervalMs: number;
    /** Sandbox driver: numbers (digits) the simulated WhatsApp does not know. */
    sandboxNotOnWhatsApp: readonly string[];
  };
  chatwoot: {
    baseUrl: string;
    apiAccessToken: string;
    timeoutMs: number;
    defaultAccountId: number | undefined;
    /** The inbox commands are read from; 0 means any inbox of the account. */
    commandInboxId: number;
    accountWebhookSecret: string | undefined;
  };
  webhook: {
    secret: string;
    commandKeyword: string;
    authorizedPhones: readonly string[];
    /** Chatwoot users (by e-mail, lower-cased) whose private notes and messages are commands, on a signed account webhook. */
    authorizedAgentEmails: readonly string[];
    signatureMaxAgeS: number;
    /** Once an inbox's signing secret is known, refuse its unsigned webhooks. */
    requireSignature: boolean;
  };
  auth: {
    statusToken: string | undefined;
    adminToken: string | undefined;
    /** Bearer token of `/api/send` and nothing else; unset: the send API is off. */
    sendToken: string | undefined;
  };
  redis: {
    /** One Redis server; unset with `sentinel` unset too: the local one (see `resolveRedisTarget`). */
    url: string | undefined;
    /**
     * Redis behind Sentinel, instead of `url`: the Sentinels to ask, the
     * master group's name, and the Sentinels' own password (`username` and
     * `password` are the data nodes').
     */
    sentinel: { addresses: readonly SentinelAddress[]; name: string; password: string | undefined } | undefined;
    username: string | undefined;
    password: string | undefined;
    prefix: string;
  };
  inbound: {
    /** Largest WhatsApp media relayed to Chatwoot; larger ones arrive as a note. */
    mediaMaxBytes: number;
    /** Decline incoming WhatsApp calls (the conversation is told either way). */
    rejectCalls: boolean;
    /** Instances whose group messages are not relayed (`all` for every instance). */
    groupsIgnored: readonly string[];
    /**
     * Days of WhatsApp history imported on their own when history sync
     * delivers it (after a link, and whenever more comes); 0: only on
     * demand. At most 30: the id mappings that keep an import from doubling
     * a message are kept that long.
     */
    historyImportDays: number;
  };
  outbound: {
    /** Largest attachment fetched from Chatwoot and sent on WhatsApp. */
    mediaMaxBytes: number;
    /** Hosts besides Chatwoot's own that attachments may be downloaded from (its object storage). */
    mediaHosts: readonly string[];
    /** Wall-clock deadline of one attachment download, redirects included. */
    mediaTimeoutMs: number;
    /** Prefix agent messages with `*Name:*`. */
    agentSignature: boolean;
    /** When an agent replies, mark the customer's messages read on WhatsApp. */
    markRead: boolean;
    /** How long an agent message waits for a disconnected instance before it fails. */
    maxWaitMs: number;
  };
  safety: {
    /** Proactive messages (to a chat whose customer has not written in 24 h) that start a new chat, per hour and number. */
    newChatsPerHour: number;
    /** Proactive messages per minute and number. */
    sendsPerMinute: number;
    /** Random pause between two proactive sends of a number, at least `min`, at most `max`. */
    spacingMs: { min: number; max: number };
    /** How long proactive sends stop after WhatsApp refused one for a limit, when it does not say. */
    lockDefaultMs: number;
    /** Whole messages that opt a customer out, normalized (upper case, no accents). */
    optOutKeywords: readonly string[];
    /** Ponte's answer to an opt-out ('' : none). */
    optOutReply: string;
    /** Show "typing…" before each agent message. */
    typing: boolean;
  };
  bots: {
    /**
     * How a bot question's options go out on WhatsApp: `text`, a numbered
     * list (default), or `poll`; an instance may choose its own
     * (`POST /admin/instances/:instance/settings`).
     */
    optionsStyle: BotOptionsStyle;
  };
  queue: {
    logLevel: LogLevel;
    concurrency: number;
    attempts: number;
    backoffDelayMs: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    /** First pause after an outage; doubles per failed probe. */
    outageProbeMinDelayMs: number;
    outageProbeMaxDelayMs: number;
    /** First pause after a 429 without Retry-After. */
    rateLimitDelayMs: number;
  };
}

export function compileConfig(e: ParsedEnv): Config {
  return {
    env: e.NODE_ENV,
    server: {
      port: e.SERVER_PORT,
      host: e.SERVER_HOST,
      logLevel: e.SERVER_LOG_LEVEL,
      publicUrl: e.PUBLIC_URL,
      maxWorkers: e.MAX_WORKERS,
      shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
      workerSlot: e.PONTE_WORKER_SLOT,
      hostId: e.HOST_ID ?? defaultHostId(),
      rebalanceSpacingMs: e.HOST_REBALANCE_SPACING_MS,
    },
    whatsapp: {
      driver: e.WHATSAPP_DRIVER,
      wsUrl: e.WHATSAPP_WS_URL,
      sessionsDir: e.BAILEYS_AUTH_SESSIONS_PARENT_DIR,
      authStore: e.AUTH_STORE,
      authStoreKey: e.AUTH_STORE_KEY,
      browserName: e.BAILEYS_BROWSER_NAME,
      logLevel: e.BAILEYS_LOG_LEVEL_INSTANCE,
      reconnectDelayMs: e.BAILEYS_RECONNECT_DELAY_MS,
      maxQrSendAttempts: e.BAILEYS_MAX_QR_SEND_ATTEMPTS,
      leaseTtlMs: e.INSTANCE_LEASE_TTL_MS,
      restoreStaggerMs: e.RESTORE_STAGGER_MS,
      sandboxQrIntervalMs: e.SANDBOX_QR_INTERVAL_MS,
      sandboxNotOnWhatsApp: e.SANDBOX_NOT_ON_WHATSAPP,
    },
    chatwoot: {
      baseUrl: e.CHATWOOT_BASE_URL,
      apiAccessToken: e.CHATWOOT_API_ACCESS_TOKEN,
      timeoutMs: e.CHATWOOT_API_TIMEOUT,
      defaultAccountId: e.DEFAULT_CHATWOOT_ACCOUNT_ID,
      commandInboxId: e.DEFAULT_RELAY_CHATWOOT_INBOX_ID,
      accountWebhookSecret: e.CHATWOOT_ACCOUNT_WEBHOOK_SECRET,
    },
    webhook: {
      secret: e.WEBHOOK_SECRET,
      commandKeyword: e.WEBHOOK_COMMAND_KEYWORD,
      authorizedPhones: e.WEBHOOK_AUTHORIZED_PHONE_NUMBERS,
      authorizedAgentEmails: e.WEBHOOK_AUTHORIZED_AGENT_EMAILS,
      signatureMaxAgeS: e.WEBHOOK_SIGNATURE_MAX_AGE_S,
      requireSignature: e.WEBHOOK_REQUIRE_SIGNATURE,
    },
    auth: { statusToken: e.STATUS_TOKEN, adminToken: e.ADMIN_TOKEN, sendToken: e.SEND_TOKEN },
    redis: {
      url: e.REDIS_URL,
      // load.ts refuses REDIS_SENTINELS without REDIS_SENTINEL_NAME.
      sentinel: e.REDIS_SENTINELS.length > 0 && e.REDIS_SENTINEL_NAME !== undefined ? { addresses: e.REDIS_SENTINELS, name: e.REDIS_SENTINEL_NAME, password: e.REDIS_SENTINEL_PASSWORD } : undefined,
      username: e.REDIS_USER,
      password: e.REDIS_PASSWORD,
      prefix: e.REDIS_PREFIX,
    },
    inbound: { mediaMaxBytes: e.INBOUND_MEDIA_MAX_BYTES, rejectCalls: e.CALLS_REJECT, groupsIgnored: e.GROUPS_IGNORED, historyImportDays: e.HISTORY_IMPORT_DAYS },
    outbound: { mediaMaxBytes: e.OUTBOUND_MEDIA_MAX_BYTES, mediaHosts: e.OUTBOUND_MEDIA_HOSTS, mediaTimeoutMs: e.OUTBOUND_MEDIA_TIMEOUT_MS, agentSignature: e.OUTBOUND_AGENT_SIGNATURE, markRead: e.OUTBOUND_MARK_READ, maxWaitMs: e.OUTBOUND_MAX_WAIT_MS },
    bots: { optionsStyle: e.BOT_OPTIONS_STYLE },
    safety: {
      newChatsPerHour: e.NEW_CHAT_SENDS_PER_HOUR,
      sendsPerMinute: e.SENDS_PER_MINUTE,
      spacingMs: { min: e.SEND_SPACING_MIN_MS, max: e.SEND_SPACING_MAX_MS },
      lockDefaultMs: e.REACHOUT_LOCK_DEFAULT_MS,
      optOutKeywords: e.OPT_OUT_KEYWORDS.map(normalizeKeyword),
      optOutReply: e.OPT_OUT_REPLY,
      typing: e.OUTBOUND_TYPING,
    },
    queue: {
      logLevel: e.CHATWOOT_QUEUE_WORKER_LOG_LEVEL,
      concurrency: e.CHATWOOT_QUEUE_CONCURRENCY,
      attempts: e.BULLMQ_JOB_ATTEMPTS,
      backoffDelayMs: e.BULLMQ_JOB_BACKOFF_DELAY,
      lockDurationMs: e.BULLMQ_LOCK_DURATION_MS,
      stalledIntervalMs: e.BULLMQ_STALLED_INTERVAL_MS,
      outageProbeMinDelayMs: e.OUTAGE_PROBE_MIN_DELAY_MS,
      outageProbeMaxDelayMs: e.OUTAGE_PROBE_MAX_DELAY_MS,
      rateLimitDelayMs: e.RATE_LIMIT_BACKOFF_MS,
    },
  };
}

/** A message as opt-out keywords compare it: trimmed, upper case, without accents. */
export function normalizeKeyword(text: string): string {
  return text.normalize('NFD').replace(/\p{M}/gu, '').trim().toUpperCase();
}

/** The host name, reduced to the characters a host id may hold (it names queues and Redis keys). */
export function defaultHostId(): string {
  return hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'host';
}
