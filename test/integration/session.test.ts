/**
 * The session state machine over the sandbox socket, a real file auth store
 * and a real Redis lease: linking, restoring, and every disconnect reason.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InstanceLease } from '../../src/worker/lease.js';
import { createLogger } from '../../src/observability/logger.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { FileAuthStore } from '../../src/whatsapp/auth-store.js';
import { PasskeyRequiredError } from '../../src/whatsapp/passkey.js';
import { type SandboxSocket, sandboxSocketFactory } from '../../src/sandbox/sandbox-socket.js';
import { silentBaileysLogger } from '../support/sandbox-auth.js';
import { type SessionState, WhatsAppSession } from '../../src/whatsapp/session.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const log = createLogger({ level: process.env.PONTE_TEST_LOG === '1' ? 'debug' : 'silent' });

let redis: Redis;
let keys: RedisKeys;
let prefix: string;
let dir: string;
let auth: FileAuthStore;
const sessions: WhatsAppSession[] = [];

beforeEach(async () => {
  redis = testRedis();
  prefix = randomPrefix();
  keys = new RedisKeys(prefix);
  dir = await mkdtemp(join(tmpdir(), 'ponte-session-'));
  auth = new FileAuthStore(dir);
});

afterEach(async () => {
  for (const s of sessions.splice(0)) await s.stop();
  await deleteKeys(redis, prefix);
  await redis.quit();
  await rm(dir, { recursive: true, force: true });
});

interface Harness {
  session: WhatsAppSession;
  sockets: SandboxSocket[];
  alerts: string[];
  states: SessionState[];
  qrs: string[];
  last(): SandboxSocket;
  until(state: SessionState): Promise<void>;
}

function harness(o: { holder?: string; maxQrs?: number; qrIntervalMs?: number; qrRefs?: number } = {}): Harness {
  const sockets: SandboxSocket[] = [];
  const instanceKey = '1-12';
  const onLost = { fire: (): void => undefined };
  const lease = new InstanceLease(redis, keys, instanceKey, o.holder ?? 'holder-a', () => onLost.fire(), { ttlMs: 2000 });
  const session = new WhatsAppSession({
    instanceKey,
    factory: sandboxSocketFactory({ qrIntervalMs: o.qrIntervalMs ?? 60_000, qrRefs: o.qrRefs ?? 6, onSocket: (s) => sockets.push(s) }),
    auth,
    lease,
    log,
    baileysLogger: silentBaileysLogger,
    browser: ['Ponte', 'Chrome', '1.0'],
    wsUrl: 'ws://unused.invalid/ws/chat',
    getMessage: () => Promise.resolve(undefined),
    reconnectDelayMs: 5,
    maxReconnectDelayMs: 20,
    maxQrs: o.maxQrs ?? 5,
    leaseRetryMs: 20,
  });
  onLost.fire = () => session.leaseLost();
  sessions.push(session);
  const h: Harness = {
    session,
    sockets,
    alerts: [],
    states: [],
    qrs: [],
    last: () => sockets.at(-1)!,
    until: (state) =>
      new Promise((resolve) => {
        if (session.state === state) return resolve();
        const on = (s: SessionState) => {
          if (s !== state) return;
          session.off('state', on);
          resolve();
        };
        session.on('state', on);
      }),
  };
  session.on('alert', (t) => h.alerts.push(t));
  session.on('state', (s) => h.states.push(s));
  session.on('qr', (qr) => h.qrs.push(qr));
  return h;
}

async function linked(h: Harness, phone = '5511987654321'): Promise<void> {
  const scanning = h.until('awaiting_scan');
  await h.session.start();
  await scanning;
  const open = h.until('open');
  h.last().scan(phone);
  await open;
}

describe('WhatsAppSession', () => {
  it('links through a QR scan: a QR, the 515 restart WhatsApp asks for, then open; the link is saved', async () => {
    const h = harness();
    await linked(h);
    expect(h.qrs).toHaveLength(1);
    expect(h.sockets).toHaveLength(2); // the 515 after pairing means a new socket
    expect(h.session.phone).toBe('5511987654321');
    expect(h.states).toEqual(['connecting', 'awaiting_scan', 'reconnecting', 'connecting', 'open']);
    expect(await auth.isLinked('1-12')).toBe(true);
  });

  it('a saved link opens again without a QR', async () => {
    const first = harness();
    await linked(first);
    await first.session.stop();
    const second = harness();
    const open = second.until('open');
    await second.session.start();
    await open;
    expect(second.qrs).toEqual([]);
    expect(second.session.phone).toBe('5511987654321');
  });

  it.each(['restartRequired', 'connectionClosed', 'connectionLost', 'badSession'] as const)('%s: reconnects and opens again, keeping the link', async (reason) => {
    const h = harness();
    await linked(h);
    const reopened = new Promise<void>((resolve) => h.session.once('open', () => resolve()));
    h.last().disconnect(reason);
    await reopened;
    expect(h.session.state).toBe('open');
    expect(h.states).toContain('reconnecting');
    expect(await auth.isLinked('1-12')).toBe(true);
  });

  it('loggedOut: clears the auth state, releases the lease and alerts', async () => {
    const h = harness();
    await linked(h);
    const out = h.until('logged_out');
    h.last().disconnect('loggedOut');
    await out;
    expect(await auth.isLinked('1-12')).toBe(false);
    expect(await InstanceLease.holderOf(redis, keys, '1-12')).toBeNull();
    expect(h.alerts).toHaveLength(1);
  });

  it.each(['connectionReplaced', 'forbidden'] as const)('%s: stops without fighting, keeps the link, alerts', async (reason) => {
    const h = harness();
    await linked(h);
    const socketsBefore = h.sockets.length;
    const halted = h.until('halted');
    h.last().disconnect(reason);
    await halted;
    expect(h.sockets).toHaveLength(socketsBefore);
    expect(await auth.isLinked('1-12')).toBe(true);
    expect(h.alerts[0]).toMatch(reason === 'connectionReplaced' ? /440/ : /403/);
  });

  it('stops after BAILEYS_MAX_QR_SEND_ATTEMPTS QR codes without a scan', async () => {
    const h = harness({ maxQrs: 2, qrIntervalMs: 5 });
    const expired = h.until('qr_expired');
    await h.session.start();
    await expired;
    expect(h.qrs).toHaveLength(2);
    expect(h.last().isClosed).toBe(true);
  });

  it('"QR refs attempts ended" (408) stops until an operator starts it again', async () => {
    const h = harness({ maxQrs: 50, qrIntervalMs: 5, qrRefs: 3 });
    const expired = h.until('qr_expired');
    await h.session.start();
    await expired;
    expect(h.qrs).toHaveLength(3);
    const again = h.until('awaiting_scan');
    await h.session.start();
    await again;
  });

  it('opens no socket while another process holds the lease, and takes over when it is released', async () => {
    await redis.set(keys.lease('1-12'), 'other-host', 'PX', 60_000);
    const h = harness();
    const waiting = h.until('waiting_lease');
    await h.session.start();
    await waiting;
    expect(h.sockets).toHaveLength(0);
    const scanning = h.until('awaiting_scan');
    await redis.del(keys.lease('1-12'));
    await scanning;
    expect(h.sockets).toHaveLength(1);
  });

  it('a lease taken by another process closes the socket at once', async () => {
    const h = harness();
    await linked(h);
    const halted = h.until('halted');
    h.session.leaseLost();
    await halted;
    expect(h.last().isClosed).toBe(true);
  });

  it('repeated 500s right after connecting raise an alert, never a wipe', async () => {
    const h = harness();
    await linked(h);
    for (let i = 0; i < 3; i++) {
      const reopened = new Promise<void>((resolve) => h.session.once('open', () => resolve()));
      h.last().disconnect('badSession');
      await reopened;
    }
    expect(h.alerts).toHaveLength(1);
    expect(h.alerts[0]).toMatch(/does not clear/);
    expect(await auth.isLinked('1-12')).toBe(true);
  });

  it('a pairing-code attempt that ends without a login discards its credentials', async () => {
    const h = harness({ qrIntervalMs: 60_000 });
    const scanning = h.until('awaiting_scan');
    await h.session.start();
    await scanning;
    const code = await h.session.requestPairingCode('5511987654321');
    expect(code).toMatch(/^[0-9A-F]{8}$/);
    const reconnecting = h.until('reconnecting');
    h.last().disconnect('connectionClosed');
    await reconnecting;
    expect(await auth.isLinked('1-12')).toBe(false);
  });

  it('a passkey demand while a QR is shown stops the attempt: no reconnect, no more QR, the lease free, the credentials kept', async () => {
    // Credentials on disk from an earlier attempt: they are not a link, and they stay.
    const saved = await auth.load('1-12');
    await saved.saveCreds();
    const h = harness({ qrIntervalMs: 5, maxQrs: 50 });
    const scanning = h.until('awaiting_scan');
    await h.session.start();
    await scanning;
    const stopped = h.until('passkey_required');
    // What the Baileys driver does on `passkey_prologue_request`.
    h.last().end(new PasskeyRequiredError('passkey_prologue_request'));
    await stopped;
    const qrsAtStop = h.qrs.length;
    expect(h.states.at(-1)).toBe('passkey_required');
    expect(h.states).not.toContain('reconnecting');
    expect(h.sockets).toHaveLength(1);
    expect(h.session.lastDisconnect).toBe('passkeyRequired: WhatsApp asked for a passkey before linking (passkey_prologue_request)');
    expect(await InstanceLease.holderOf(redis, keys, '1-12')).toBeNull();
    expect((await auth.load('1-12')).state.creds.noiseKey).toEqual(saved.state.creds.noiseKey);
    expect(h.alerts).toEqual([]);

    // An operator starts it again: a fresh socket shows QR codes.
    const again = h.until('awaiting_scan');
    await h.session.start();
    await again;
    expect(h.sockets).toHaveLength(2);
    expect(h.qrs.length).toBeGreaterThan(qrsAtStop);
  });

  it('a passkey demand after a pairing code discards the half-made link, so the next attempt is a fresh one', async () => {
    const h = harness({ qrIntervalMs: 60_000 });
    const scanning = h.until('awaiting_scan');
    await h.session.start();
    await scanning;
    await h.session.requestPairingCode('5511987654321');
    const stopped = h.until('passkey_required');
    h.last().end(new PasskeyRequiredError('crsc_continuation'));
    await stopped;
    expect(await auth.isLinked('1-12')).toBe(false);
    expect(h.session.phone).toBeUndefined();
    expect(h.sockets).toHaveLength(1);
    const again = h.until('awaiting_scan');
    await h.session.start();
    await again;
  });

  it('stop ends the socket and releases the lease; logout unlinks and deletes the state', async () => {
    const h = harness();
    await linked(h);
    await h.session.stop();
    expect(h.last().isClosed).toBe(true);
    expect(await InstanceLease.holderOf(redis, keys, '1-12')).toBeNull();
    expect(await auth.isLinked('1-12')).toBe(true);
    const open = h.until('open');
    await h.session.start();
    await open;
    await h.session.logout();
    expect(h.session.state).toBe('logged_out');
    expect(await auth.isLinked('1-12')).toBe(false);
  });
});
