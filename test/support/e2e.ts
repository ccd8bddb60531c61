/** Setup the black-box tests in `test/e2e` share: the daemon's environment, a linked sandbox number, the teardown. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SpawnedRedis } from '../../src/redis/redis-server.js';
import type { ChatwootDouble } from './chatwoot-double/index.js';
import { ADMIN, api, type Daemon, instanceStatus, stopDaemon, until } from './daemon.js';
import { deleteKeys, testRedis, testRedisUrl } from './redis.js';

/** The daemons' `WEBHOOK_SECRET` unless a file sets its own. */
export const SECRET = 'e2e-webhook-secret-0123456789';

/** PONTE_TEST_LOG=1 shows the daemon's (and Baileys') debug log in failure messages. */
export const VERBOSE = process.env.PONTE_TEST_LOG === '1';

/** A fresh folder under the system's temp dir, named `<prefix><random>`; `tearDown` removes it. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** What a daemon under test is pointed at. */
export interface DaemonWorld {
  double: ChatwootDouble;
  /** `BAILEYS_AUTH_SESSIONS_PARENT_DIR`. */
  sessions: string;
  /** `REDIS_PREFIX` (none when undefined, as on a Redis of the test's own). */
  prefix?: string;
  /** `REDIS_URL`: the shared test Redis unless given. */
  redisUrl?: string;
}

/**
 * The environment of a sandbox daemon on `world`, with `overrides` on top;
 * an override of `undefined` leaves that variable out.
 */
export function daemonEnv(world: DaemonWorld, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    CHATWOOT_BASE_URL: world.double.url,
    CHATWOOT_API_ACCESS_TOKEN: world.double.token,
    WEBHOOK_SECRET: SECRET,
    ADMIN_TOKEN: ADMIN,
    REDIS_URL: world.redisUrl ?? testRedisUrl(),
    REDIS_PREFIX: world.prefix,
    WHATSAPP_DRIVER: 'sandbox',
    BAILEYS_AUTH_SESSIONS_PARENT_DIR: world.sessions,
    SANDBOX_QR_INTERVAL_MS: '60000',
    SERVER_LOG_LEVEL: VERBOSE ? 'debug' : 'error',
    CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'error',
    // Tests send to new chats freely; test/e2e/safe-sending.test.ts sets its own limits.
    SENDS_PER_MINUTE: '10000',
    NEW_CHAT_SENDS_PER_HOUR: '100000',
    SEND_SPACING_MIN_MS: '0',
    SEND_SPACING_MAX_MS: '0',
    ...overrides,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** A call to the Chatwoot double's REST API under its access token, as an integration makes it; resolves with the JSON answer. */
export async function chatwootApi(double: ChatwootDouble, accountId: number, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${double.url}/api/v1/accounts/${accountId}${path}`, {
    method,
    headers: { api_access_token: double.token, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return (await res.json()) as Record<string, unknown>;
}

/** A contact of `inbox` (under `sourceId`) and a conversation with them, as an agent starts one in Chatwoot; resolves with the conversation's id. */
export async function startConversation(double: ChatwootDouble, accountId: number, o: { inbox: number; name: string; sourceId: string; phone?: string }): Promise<number> {
  const c = (await chatwootApi(double, accountId, 'POST', '/contacts', { inbox_id: o.inbox, name: o.name, ...(o.phone ? { phone_number: o.phone } : {}), source_id: o.sourceId })) as { payload: { contact: { id: number } } };
  const conv = (await chatwootApi(double, accountId, 'POST', '/conversations', { source_id: o.sourceId, inbox_id: o.inbox, contact_id: c.payload.contact.id })) as { id: number };
  return conv.id;
}

/** Waits for the sandbox instance `key` to show a QR, scans it as `phone`, and waits until it is open. */
export async function scanSandbox(d: Daemon, key: string, phone: string): Promise<void> {
  await until(`a QR for ${key}`, async () => (await instanceStatus(d, key))?.state === 'awaiting_scan', d);
  await api(d, 'POST', `/sandbox/instances/${key}/scan`, { phone });
  await until(`${key} open`, async () => (await instanceStatus(d, key))?.state === 'open', d);
}

/** Creates the instance of `inbox` from the admin API and links it to `phone` on the sandbox driver; resolves with its key once it is open. */
export async function linkSandbox(d: Daemon, o: { account: number; inbox: number; phone: string }): Promise<string> {
  const key = `${o.account}-${o.inbox}`;
  await api(d, 'POST', '/admin/instances', { inbox: o.inbox, account: o.account });
  await scanSandbox(d, key, o.phone);
  return key;
}

export interface Teardown {
  /** Stopped first, in order (SIGTERM, awaited; those already gone are skipped). */
  daemons?: ReadonlyArray<Daemon | undefined>;
  /** Closed next, in order: the Chatwoot double, a WhatsApp server. */
  close?: ReadonlyArray<{ close(): Promise<void> } | undefined>;
  /** A Redis of the test's own, stopped after those. */
  redis?: SpawnedRedis;
  /** Its keys deleted from the shared test Redis. */
  prefix?: string;
  /** Removed last. */
  dir?: string;
}

/** Undoes what a test file set up, in the order that lets each part shut down cleanly. Parts not (yet) there are skipped. */
export async function tearDown(t: Teardown): Promise<void> {
  for (const d of t.daemons ?? []) if (d) await stopDaemon(d);
  for (const c of t.close ?? []) await c?.close();
  await t.redis?.stop();
  if (t.prefix !== undefined) {
    const redis = testRedis();
    await deleteKeys(redis, t.prefix);
    await redis.quit();
  }
  if (t.dir) await rm(t.dir, { recursive: true, force: true });
}
