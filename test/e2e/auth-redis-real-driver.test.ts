/**
 * Auth state in Redis (`AUTH_STORE=redis`, sealed with `AUTH_STORE_KEY`) on
 * the production driver against the loopback WhatsApp server: a number
 * linked on one host is opened by another host (its own HOST_ID, port and
 * session folder, the same Redis prefix) after the first is SIGKILLed,
 * without a QR, and both directions work there with the Signal sessions
 * read from Redis. Nothing of the auth state is on disk or readable in Redis.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { api, type Daemon, instanceStatus, killDaemon, until } from '../support/daemon.js';
import { SECRET, tearDown, tempDir } from '../support/e2e.js';
import { linkByQr, loginsOf, realDriverEnv, startRealDriverDaemon, textOf } from '../support/real-whatsapp.js';
import { randomPrefix, testRedis } from '../support/redis.js';
import { quietLibsignal, startWhatsAppServer, type WhatsAppServer } from '../support/whatsapp-server/index.js';

const PHONE = '5511933330101';

describe('auth state in Redis, one number moving between two daemons', () => {
  let server: WhatsAppServer;
  let double: ChatwootDouble;
  const prefix = randomPrefix();
  const sealKey = randomBytes(32).toString('hex');
  const dirs: string[] = [];
  const daemons: Daemon[] = [];
  let accountId: number;
  let inboxId: number;
  let key: string;
  let loudLibsignal: (() => void) | undefined;

  const envFor = (sessions: string, hostId: string) =>
    realDriverEnv(
      { double, sessions, prefix },
      {
        HOST_ID: hostId,
        AUTH_STORE: 'redis',
        AUTH_STORE_KEY: sealKey,
        // The dead daemon's lease runs out soon, so the other one takes the number within seconds.
        INSTANCE_LEASE_TTL_MS: '3000',
        BAILEYS_RECONNECT_DELAY_MS: '250',
      },
    );
  const start = async (hostId: string): Promise<Daemon> => {
    const sessions = await tempDir('ponte-e2e-authredis-');
    dirs.push(sessions);
    const d = await startRealDriverDaemon(server, envFor(sessions, hostId), { detached: true });
    daemons.push(d);
    double.setInboxWebhook(inboxId, `${d.base}/webhook/chatwoot/${key}?token=${SECRET}`);
    return d;
  };
  const stateOf = (d: Daemon) => instanceStatus(d, key);
  const allMessages = (): CwMessageRecord[] => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id));

  beforeAll(async () => {
    loudLibsignal = quietLibsignal();
    server = await startWhatsAppServer();
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    inboxId = double.addInbox({ accountId, name: 'WhatsApp Loja' }).id;
    key = `${accountId}-${inboxId}`;
  }, 60_000);

  afterAll(async () => {
    await tearDown({ daemons, close: [server, double], prefix });
    for (const dir of dirs) await tearDown({ dir });
    loudLibsignal?.();
  }, 60_000);

  afterEach(() => {
    expect(server.errors).toEqual([]);
    expect(double.violations).toEqual([]);
  });

  it('links on the first daemon, relays both ways; the second daemon opens it from Redis after a SIGKILL, no QR, both ways again', async () => {
    const first = await start('host-a');
    expect((await api(first, 'POST', '/admin/instances', { inbox: inboxId, account: accountId })).status).toBe(201);
    await linkByQr(first, server, key, PHONE);
    await until('open on the first daemon', async () => (await stateOf(first))?.state === 'open', first);

    const ana = server.addPeer({ phone: '5511987650101', pushName: 'Ana' });
    const account = server.account(PHONE)!;
    const hello = await ana.sendText(account, 'Bom dia, vocês abrem sábado?');
    const relayed = await until('the first message in Chatwoot', () => Promise.resolve(allMessages().find((m) => m.source_id === `WAID:${hello.id}`)), first);
    double.createAgentMessage(accountId, relayed.conversation_id, { content: 'Abrimos sim, das 9h às 13h.' });
    await until('the reply on the phone', () => Promise.resolve(ana.messages.items.find((m) => textOf(m.message) === 'Abrimos sim, das 9h às 13h.')), first);

    // Nothing on disk but the journal folder; in Redis only sealed values.
    for (const dir of dirs) expect((await readdir(dir)).filter((n) => n !== 'journal')).toEqual([]);
    const redis = testRedis();
    try {
      const creds = await redis.get(`${prefix}auth:${key}:creds`);
      const signal = await redis.hgetall(`${prefix}auth:${key}:keys`);
      expect(creds).toMatch(/^s1:/);
      expect(Object.keys(signal).some((f) => f.startsWith('session/'))).toBe(true);
      expect(Object.values(signal).every((v) => v.startsWith('s1:'))).toBe(true);
    } finally {
      await redis.quit();
    }

    const registrations = server.connections.filter((c) => c.isRegistration).length;
    const logins = loginsOf(server, PHONE).length;
    await killDaemon(first);
    const second = await start('host-b');
    // Open on host-b itself: until its heartbeat expires, the dead host-a still lists the number as open there.
    await until('open on the second daemon', async () => {
      const s = await stateOf(second);
      return s?.state === 'open' && s.host === 'host-b';
    }, second);
    expect(await stateOf(second)).toMatchObject({ state: 'open', qrAttempts: 0, host: 'host-b' });
    expect(server.connections.filter((c) => c.isRegistration).length).toBe(registrations);
    expect(loginsOf(server, PHONE).length).toBeGreaterThan(logins);

    const again = await ana.sendText(account, 'E domingo?');
    const next = await until('the next message in Chatwoot', () => Promise.resolve(allMessages().find((m) => m.source_id === `WAID:${again.id}`)), second);
    expect(next).toMatchObject({ content: 'E domingo?', conversation_id: relayed.conversation_id });
    double.createAgentMessage(accountId, relayed.conversation_id, { content: 'Domingo fechado.' });
    await until('the second reply on the phone', () => Promise.resolve(ana.messages.items.find((m) => textOf(m.message) === 'Domingo fechado.')), second);
  }, 120_000);

  it('a daemon with another AUTH_STORE_KEY halts the number with the reason instead of showing a QR', async () => {
    for (const d of daemons) await killDaemon(d);
    const sessions = await tempDir('ponte-e2e-authredis-');
    dirs.push(sessions);
    const wrong = await startRealDriverDaemon(server, { ...envFor(sessions, 'host-c'), AUTH_STORE_KEY: randomBytes(32).toString('hex') }, { detached: true });
    daemons.push(wrong);
    const halted = await until('halted', async () => {
      const i = await instanceStatus(wrong, key);
      // The state travels at once, the rest of the status with the next report.
      return i?.state === 'halted' && i.lastError ? i : undefined;
    }, wrong);
    expect(halted.lastError).toMatch(/AUTH_STORE_KEY does not decrypt/);
    expect(halted.qrAttempts).toBe(0);
  }, 60_000);
});
