/**
 * The whole daemon on its production WhatsApp driver (`WHATSAPP_DRIVER=baileys`,
 * unmodified Baileys rc14 sockets) pointed at the loopback WhatsApp server
 * (`test/support/whatsapp-server`) for end-to-end tests: starting such a
 * daemon, and the steps an operator and a phone go through to link a
 * number (QR read from the admin API and scanned by the server's phone side,
 * or a pairing code typed on the phone).
 */
import type { proto } from '@whiskeysockets/baileys';
import { api, type Daemon, type DaemonOptions, startDaemon, until } from './daemon.js';
import { daemonEnv, type DaemonWorld, VERBOSE } from './e2e.js';
import { type ClientConnection, type CompanionDevice, preloadEnv, preloadNodeArgs, type WhatsAppServer } from './whatsapp-server/index.js';

/** The text of a WhatsApp message a phone received (plain or extended text), undefined for other kinds. */
export const textOf = (m: proto.IMessage | null | undefined): string | undefined => m?.conversation ?? m?.extendedTextMessage?.text ?? undefined;

/**
 * The environment of a daemon on `world` for `startRealDriverDaemon` (which
 * sets the driver; no sandbox QR interval): one worker, warnings only unless
 * PONTE_TEST_LOG=1, with `overrides` on top (`undefined` leaves a variable out).
 */
export function realDriverEnv(world: DaemonWorld, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  return daemonEnv(world, {
    WHATSAPP_DRIVER: undefined,
    SANDBOX_QR_INTERVAL_MS: undefined,
    MAX_WORKERS: '1',
    SERVER_LOG_LEVEL: VERBOSE ? 'debug' : 'warn',
    BAILEYS_LOG_LEVEL_INSTANCE: VERBOSE ? 'debug' : 'warn',
    CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'warn',
    NODE_ENV: 'test',
    ...overrides,
  });
}

/**
 * Starts the daemon with the Baileys driver, its sockets (in every worker)
 * sent to `server`: the preload trusts the server's test roots, and
 * `WHATSAPP_WS_URL` names it.
 */
export function startRealDriverDaemon(server: WhatsAppServer, env: Record<string, string>, o: DaemonOptions = {}): Promise<Daemon> {
  return startDaemon({ ...env, ...preloadEnv(server.url), WHATSAPP_DRIVER: 'baileys' }, { ...o, nodeArgs: [...preloadNodeArgs(), ...(o.nodeArgs ?? [])] });
}

/** The QR the instance shows now, read from the admin API as text (`?format=text`); waits until it shows one. */
export function currentQr(d: Daemon, key: string): Promise<string> {
  return until(
    `a QR for ${key}`,
    async () => {
      const r = await api(d, 'GET', `/admin/instances/${key}/qr?format=text`);
      return r.status === 200 && typeof r.json.qr === 'string' ? r.json.qr : undefined;
    },
    d,
  );
}

/** Reads the instance's QR and has the phone of `phone` scan it; resolves with the companion once the daemon confirmed the pairing. */
export async function linkByQr(d: Daemon, server: WhatsAppServer, key: string, phone: string): Promise<CompanionDevice> {
  return server.scanQr(await currentQr(d, key), { phone });
}

/**
 * Asks the daemon for a pairing code for `phone` (once the instance is waiting
 * to be linked) and types it on that phone; resolves with the companion once
 * the daemon confirmed the pairing.
 */
export async function linkByPairingCode(d: Daemon, server: WhatsAppServer, key: string, phone: string): Promise<{ code: string; companion: CompanionDevice }> {
  const code = await until(
    `a pairing code for ${key}`,
    async () => {
      const r = await api(d, 'POST', `/admin/instances/${key}/pairing-code`, { phone });
      return r.status === 200 && typeof r.json.code === 'string' ? r.json.code : undefined;
    },
    d,
  );
  return { code, companion: await server.enterPairingCode(code, { phone }) };
}

/** Every login (not registration) connection the server saw for the number, oldest first. */
export function loginsOf(server: WhatsAppServer, phone: string): ClientConnection[] {
  return server.connections.filter((c) => !c.isRegistration && c.payload !== undefined && String(c.payload.username ?? '') === phone);
}
