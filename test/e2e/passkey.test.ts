/**
 * A number whose WhatsApp account asks for a passkey before linking a new
 * device, end to end: the daemon on its production driver (Baileys rc14)
 * against the loopback WhatsApp server, which sends
 * `passkey_prologue_request` where it would link the companion (on a QR scan,
 * or after a pairing code). An agent links from Chatwoot (`erga` as a private
 * note); the instance stops in `passkey_required`, visible in /global-status
 * and /metrics (and on dashboard.sh, under tmux when there is one), the
 * conversation is told what to do, nothing reconnects, and `erga` again
 * starts a fresh attempt.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { ADMIN, api, type Daemon, until } from '../support/daemon.js';
import { SECRET, tearDown, tempDir, VERBOSE } from '../support/e2e.js';
import { currentQr, loginsOf, realDriverEnv, startRealDriverDaemon } from '../support/real-whatsapp.js';
import { randomPrefix } from '../support/redis.js';
import { PasskeyRequiredError, quietLibsignal, startWhatsAppServer, type WhatsAppServer } from '../support/whatsapp-server/index.js';

const SIGNING = 'passkey-account-webhook-secret';
const AGENT = 'ana@example.com';
const PHONE_QR = '5511944440001';
const PHONE_CODE = '5511944440002';
const RECONNECT_DELAY_MS = 250;
/** Many reconnect delays: a reconnect or a new QR would come within this long. */
const QUIET_MS = 2000;
const hasTmux = spawnSync('tmux', ['-V']).status === 0;

interface GlobalStatusInstance {
  instance: string;
  state: string;
  phone: string | null;
  lastError: string | null;
}

describe('a number that WhatsApp asks for a passkey before linking', () => {
  let server: WhatsAppServer;
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let accountId: number;
  let agentId: number;
  let qrInbox: number;
  let codeInbox: number;
  let conversation: number;
  let loudLibsignal: (() => void) | undefined;

  beforeAll(async () => {
    loudLibsignal = quietLibsignal();
    server = await startWhatsAppServer();
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    agentId = double.addUser({ name: 'Ana', email: AGENT }).id;
    sessions = await tempDir('ponte-e2e-passkey-');
    const env = realDriverEnv(
      { double, sessions, prefix },
      {
        BAILEYS_RECONNECT_DELAY_MS: String(RECONNECT_DELAY_MS),
        CHATWOOT_ACCOUNT_WEBHOOK_SECRET: SIGNING,
        WEBHOOK_AUTHORIZED_AGENT_EMAILS: AGENT,
        SHUTDOWN_TIMEOUT_MS: '15000',
        BAILEYS_LOG_LEVEL_INSTANCE: VERBOSE ? 'debug' : 'silent',
      },
    );
    daemon = await startRealDriverDaemon(server, env);
    double.addAccountWebhook({ accountId, url: `${daemon.base}/webhook/comando?token=${SECRET}`, subscriptions: ['message_created'], secret: SIGNING });
    const inbox = (name: string) => {
      const id = double.addInbox({ accountId, name }).id;
      double.setInboxWebhook(id, `${daemon.base}/webhook/chatwoot/${accountId}-${id}?token=${SECRET}`);
      return id;
    };
    qrInbox = inbox('WhatsApp Vendas');
    codeInbox = inbox('WhatsApp Suporte');
    conversation = await operatorConversation();
    server.requirePasskey(PHONE_QR);
    server.requirePasskey(PHONE_CODE);
  }, 90_000);

  const tmuxSessions: string[] = [];

  afterAll(async () => {
    for (const name of tmuxSessions) spawnSync('tmux', ['kill-session', '-t', name]);
    await tearDown({ daemons: [daemon], close: [server, double], prefix, dir: sessions });
    loudLibsignal?.();
  }, 90_000);

  afterEach(() => {
    expect(server.errors).toEqual([]);
    expect(double.violations).toEqual([]);
  });

  /** A conversation in an inbox Ponte does not serve, where the agent gives commands. */
  async function operatorConversation(): Promise<number> {
    const opsInbox = double.addInbox({ accountId, name: 'Operações' }).id;
    const call = async (path: string, body: unknown): Promise<unknown> => {
      const res = await fetch(`${double.url}/api/v1/accounts/${accountId}${path}`, {
        method: 'POST',
        headers: { api_access_token: double.token, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      return res.json();
    };
    const created = (await call('/contacts', { inbox_id: opsInbox, name: 'Operador' })) as { payload: { contact: { id: number }; contact_inbox: { source_id: string } } };
    const conv = (await call('/conversations', { source_id: created.payload.contact_inbox.source_id, inbox_id: opsInbox, contact_id: created.payload.contact.id })) as { id: number };
    return conv.id;
  }

  const command = (text: string) => double.createAgentMessage(accountId, conversation, { content: text, private: true, userId: agentId });
  const replies = (): CwMessageRecord[] => double.messages(accountId, conversation).filter((m) => (m.source_id ?? '').startsWith('PONTE:'));
  const replyMatching = (re: RegExp, after = 0) => until(`a reply matching ${re}`, () => Promise.resolve(replies().slice(after).find((m) => re.test(m.content ?? ''))), daemon);
  const status = async (key: string): Promise<GlobalStatusInstance | undefined> => {
    const { json } = await api(daemon, 'GET', '/global-status');
    return (json.instances as GlobalStatusInstance[]).find((i) => i.instance === key);
  };
  const stateIs = (key: string, state: string) => until(`${key} ${state}`, async () => (await status(key))?.state === state, daemon);
  const metrics = async () => (await fetch(`${daemon.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
  const registrations = () => server.connections.filter((c) => c.isRegistration);
  /** Alerts (logged out, replaced, …) about an instance: a passkey stop is none of them. */
  const alertsAbout = (key: string) => replies().filter((m) => (m.content ?? '').startsWith(`⚠️ ${key}:`) && !/passkey/.test(m.content ?? ''));

  /** The dashboard's line for `key`, in a tmux pane running dashboard.sh against the daemon. */
  async function dashboardLine(key: string, state: string): Promise<string> {
    const name = `ponte-dash-${randomBytes(4).toString('hex')}`;
    tmuxSessions.push(name);
    execFileSync('tmux', ['new-session', '-d', '-s', name, '-x', '200', '-y', '40', `env PONTE_STATUS_TOKEN=${ADMIN} DASHBOARD_INTERVAL=1 ./dashboard.sh ${daemon.base}`]);
    const line = await until(`${key} ${state} on the dashboard`, () => {
      const pane = execFileSync('tmux', ['capture-pane', '-p', '-t', name], { encoding: 'utf8' });
      return Promise.resolve(pane.split('\n').find((l) => l.startsWith(`${key} `) && l.includes(state)));
    });
    execFileSync('tmux', ['kill-session', '-t', name]);
    return line;
  }

  /** The checks every passkey stop passes: the state shows everywhere, the operator is told, and nothing more happens. */
  async function expectStoppedForPasskey(key: string, inboxId: number, repliesBefore: number): Promise<void> {
    await stateIs(key, 'passkey_required');
    // The reason comes with the worker's next status report.
    await until('the reason in /global-status', async () => /^passkeyRequired: .*passkey_prologue_request/.test((await status(key))?.lastError ?? ''), daemon);
    const text = await metrics();
    expect(text).toContain(`ponte_instance_state{instance="${key}",state="passkey_required"} 1`);
    expect(text).toContain(`ponte_instance_state{instance="${key}",state="awaiting_scan"} 0`);

    const told = await replyMatching(/passkey/, repliesBefore);
    expect(told.private).toBe(true);
    expect(told.content).toContain(key);
    expect(told.content).toContain('Settings → Account → Passkeys');
    expect(told.content).toContain(`"erga ${inboxId} ${accountId}"`);
    expect(told.content).not.toContain('\n');

    // No reconnect and no further QR: the server sees no new connection, the conversation no new QR, the state stays.
    const connectionsAtStop = server.connections.length;
    const repliesAtStop = replies().length;
    await new Promise((r) => setTimeout(r, QUIET_MS));
    expect(server.connections.length).toBe(connectionsAtStop);
    expect(replies().length).toBe(repliesAtStop);
    expect((await status(key))?.state).toBe('passkey_required');
  }

  it('QR: the scan gets a passkey demand; the instance stops in passkey_required, the agent is told, erga again starts afresh', async () => {
    const key = `${accountId}-${qrInbox}`;
    command(`erga ${qrInbox} ${accountId}`);
    await replyMatching(/^QR code for /);
    await stateIs(key, 'awaiting_scan');
    const before = replies().length;
    const scanned: unknown = await server.scanQr(await currentQr(daemon, key), { phone: PHONE_QR }).catch((e: unknown) => e);
    expect(scanned).toBeInstanceOf(PasskeyRequiredError);
    const { request } = scanned as PasskeyRequiredError;
    expect(request.via).toBe('qr');
    // Ponte closed its side and sent nothing back but what rc14 sends on its own.
    await until('the linking connection closed', () => Promise.resolve(request.connection.state === 'closed'), daemon);
    expect(request.connection.received.filter((s) => s.tag === 'iq' && JSON.stringify(s).includes('passkey'))).toEqual([]);
    await expectStoppedForPasskey(key, qrInbox, before);
    expect(server.account(PHONE_QR)?.companions.size).toBe(0);
    if (hasTmux) expect(await dashboardLine(key, 'passkey_required')).toMatch(new RegExp(`^${key}\\s+passkey_required\\s+-\\s+\\S+\\s+0\\s+0\\s+0\\s+0\\s+0\\s+0\\s+0\\s+0\\s+-\\s+passkeyRequired: `));

    // The operator changed something on the phone and asks again: a new registration, new QR codes, and this time the link completes.
    const registrationsBefore = registrations().length;
    const repliesBefore = replies().length;
    server.requirePasskey(PHONE_QR, false);
    command(`erga ${qrInbox} ${accountId}`);
    await replyMatching(/^QR code for /, repliesBefore);
    await stateIs(key, 'awaiting_scan');
    expect(registrations().length).toBe(registrationsBefore + 1);
    await server.scanQr(await currentQr(daemon, key), { phone: PHONE_QR });
    await stateIs(key, 'open');
    expect((await status(key))?.phone).toBe(PHONE_QR);
    await replyMatching(/^✅ Linked: \+5511944440001/, repliesBefore);
  }, 120_000);

  it('pairing code: the code checks out, then a passkey demand; the half-made link is dropped, so erga again shows a QR instead of logging in', async () => {
    const key = `${accountId}-${codeInbox}`;
    command(`erga code ${codeInbox} ${accountId} +${PHONE_CODE}`);
    const codeReply = await replyMatching(/^Pairing code for /);
    const code = /: ([A-Z0-9]{8})\n/.exec(codeReply.content ?? '')?.[1];
    expect(code).toBeDefined();
    const before = replies().length;
    await expect(server.enterPairingCode(code!, { phone: PHONE_CODE })).rejects.toBeInstanceOf(PasskeyRequiredError);
    const request = await server.passkeyRequests.waitFor((r) => r.phone === PHONE_CODE);
    expect(request.via).toBe('pairing-code');
    await expectStoppedForPasskey(key, codeInbox, before);
    // rc14 acked the notification before the socket closed.
    expect(request.connection.acks.items.some((a) => a.attrs.id === request.notificationId)).toBe(true);
    // The credentials on disk name no number.
    const creds = JSON.parse(await readFile(join(sessions, key, 'creds.json'), 'utf8')) as { me?: unknown };
    expect(creds.me).toBeUndefined();

    const repliesBefore = replies().length;
    command(`erga ${codeInbox} ${accountId}`);
    await replyMatching(/^QR code for /, repliesBefore);
    await stateIs(key, 'awaiting_scan');
    expect(loginsOf(server, PHONE_CODE)).toEqual([]);
    expect(alertsAbout(key)).toEqual([]);
  }, 120_000);
});
