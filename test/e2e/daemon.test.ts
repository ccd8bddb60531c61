/**
 * The whole daemon as operators run it: a primary with two workers in a
 * child process, the sandbox driver, the Chatwoot double. Driven only
 * through HTTP: create an instance, scan its QR, relay messages, SIGKILL the
 * owning worker, relay more, start a second daemon against the same Redis
 * (it must not open a second socket), then SIGTERM.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { ADMIN, api, type Daemon, instanceStatus, startDaemon, stopDaemon, until } from '../support/daemon.js';
import { daemonEnv, scanSandbox, tearDown, tempDir, VERBOSE } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';

describe('the daemon, black box', () => {
  let double: ChatwootDouble;
  let sessions: string;
  let prefix: string;
  let env: Record<string, string>;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    double = await startChatwootDouble({ webhooksEnabled: false });
    sessions = await tempDir('ponte-e2e-');
    prefix = randomPrefix();
    env = daemonEnv(
      { double, sessions, prefix },
      {
        MAX_WORKERS: '2',
        INSTANCE_LEASE_TTL_MS: '3000',
        BULLMQ_LOCK_DURATION_MS: '3000',
        BULLMQ_STALLED_INTERVAL_MS: '1000',
        SHUTDOWN_TIMEOUT_MS: '15000',
        SERVER_LOG_LEVEL: VERBOSE ? 'debug' : 'warn',
        CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'warn',
        NODE_ENV: 'test',
      },
    );
  }, 60_000);

  afterAll(async () => {
    for (const d of daemons) if (d.proc.exitCode === null) d.proc.kill('SIGKILL');
    await tearDown({ close: [double], prefix, dir: sessions });
  });

  it('links, relays, survives a killed worker, refuses a second socket, and stops cleanly', async () => {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id, name: 'Vendas' });
    const key = `${account.id}-${inbox.id}`;
    const a = await startDaemon(env);
    daemons.push(a);

    // Create → QR → scan → open.
    const created = await api(a, 'POST', '/admin/instances', { inbox: inbox.id, account: account.id });
    expect(created.status).toBe(201);
    expect(created.json.instance).toBe(key);
    const qr = await until('a QR', async () => {
      const r = await fetch(`${a.base}/admin/instances/${key}/qr`, { headers: { authorization: `Bearer ${ADMIN}` } });
      return r.status === 200 ? r : undefined;
    }, a);
    expect(qr.headers.get('content-type')).toBe('image/png');
    expect((await api(a, 'POST', `/sandbox/instances/${key}/scan`, { phone: '+55 11 98888-7777' })).status).toBe(200);
    await until('open', async () => (await instanceStatus(a, key))?.state === 'open', a);

    // Messages over three chats; each send retried while the owning worker restarts.
    const sent: Array<{ id: string; from: string }> = [];
    const send = async (i: number) => {
      const from = `551197770000${i % 3}`;
      const id = `E2E${String(i).padStart(3, '0')}`;
      await until(`message ${id} accepted`, async () => (await api(a, 'POST', `/sandbox/instances/${key}/messages`, { from, pushName: `Cliente ${i % 3}`, text: `mensagem ${i}`, id })).status === 201, a);
      sent.push({ id, from });
    };
    const relayed = () => double.conversations(account.id).flatMap((c) => double.messages(account.id, c.id));
    for (let i = 0; i < 30; i++) await send(i);
    await until('30 relayed', () => Promise.resolve(relayed().length >= 30));

    const owner = (await instanceStatus(a, key))!.worker!;
    const { json: status } = await api(a, 'GET', '/global-status');
    const pid = (status.workers as Array<{ id: number; pid: number }>).find((w) => w.id === owner)!.pid;
    process.kill(pid, 'SIGKILL');
    for (let i = 30; i < 60; i++) await send(i);
    await until('open again', async () => (await instanceStatus(a, key))?.state === 'open', a);
    await until('60 relayed', () => Promise.resolve(relayed().length >= 60));

    // A burst in one WhatsApp delivery: all of it or, on a bad entry, none of it, with the entry named.
    const burst = Array.from({ length: 20 }, (_, j) => ({ from: `551197770000${j % 3}`, text: `rajada ${j}`, id: `E2EB${String(j).padStart(2, '0')}` }));
    const bad = await api(a, 'POST', `/sandbox/instances/${key}/messages`, { messages: [burst[0], { from: 'nobody' }] });
    expect(bad.status).toBe(400);
    expect(String(bad.json.message)).toContain('messages[1].from');
    const accepted = await api(a, 'POST', `/sandbox/instances/${key}/messages`, { messages: burst });
    expect(accepted.status).toBe(201);
    expect(accepted.json.ids).toEqual(burst.map((m) => m.id));
    sent.push(...burst);
    await until('80 relayed', () => Promise.resolve(relayed().length >= 80));

    const sourceIds = relayed().map((m) => m.source_id);
    expect(sourceIds).toHaveLength(80);
    expect(new Set(sourceIds).size).toBe(80);
    for (const chat of ['5511977700000', '5511977700001', '5511977700002']) {
      const conv = double.conversations(account.id).find((c) => double.contacts(account.id).find((p) => p.id === c.contact_id)?.phone_number === `+${chat}`)!;
      const expected = sent.filter((s) => s.from === chat).map((s) => `WAID:${s.id}`);
      expect(double.messages(account.id, conv.id).map((m) => m.source_id)).toEqual(expected);
    }
    const { json: after } = await api(a, 'GET', '/global-status');
    const workers = after.workers as Array<{ id: number; restarts: number; cpuS: number | null }>;
    expect(workers.find((w) => w.id === owner)!.restarts).toBe(1);
    // CPU seconds per process, as the benchmark reads them: the instance's worker now, and the primary.
    const now = (await instanceStatus(a, key))!.worker!;
    // A respawned worker's figures come with its first status report (once a second).
    const cpuOf = async () => ((await api(a, 'GET', '/global-status')).json.workers as Array<{ id: number; cpuS: number | null }>).find((w) => w.id === now)?.cpuS ?? null;
    await until('the worker reports its CPU', async () => (await cpuOf()) !== null);
    expect(await cpuOf()).toBeGreaterThan(0);
    expect((after.primary as { cpuS: number }).cpuS).toBeGreaterThan(0);

    // A second daemon on the same Redis prefix opens nothing: started twice on this host (one HOST_ID), it
    // waits for the first one's heartbeat to expire, then refuses; as another host with auth state in files,
    // it refuses at once (numbers move between hosts, only AUTH_STORE=redis moves with them).
    const twice = await runToExit({ ...env, INSTANCE_LEASE_TTL_MS: '1000', SERVER_PORT: '0' });
    expect(twice.code).not.toBe(0);
    expect(twice.output).toContain('HOST_ID');
    const other = await runToExit({ ...env, HOST_ID: 'another-host', SERVER_PORT: '0' });
    expect(other.code).not.toBe(0);
    expect(other.output).toContain('AUTH_STORE=redis');
    expect((await instanceStatus(a, key))?.state).toBe('open');

    // SIGTERM: a clean exit (the primary exits 1 when its deadline passes).
    expect(await stopDaemon(a)).toBe(0);
  }, 120_000);

  it('the operator API refuses bad input with reasons; the CLI lists instances; a logout from the phone stops the instance', async () => {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id });
    const key = `${account.id}-${inbox.id}`;
    const d = await startDaemon({ ...env, REDIS_PREFIX: `${prefix}ops:`, STATUS_TOKEN: 'e2e-status-token-0123' });
    daemons.push(d);

    const noToken = await fetch(`${d.base}/admin/instances`);
    expect(noToken.status).toBe(401);
    const wrong = await fetch(`${d.base}/admin/instances`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const badCreate = await api(d, 'POST', '/admin/instances', { account: 1 });
    expect(badCreate.status).toBe(400);
    expect(badCreate.json.message).toMatch(/^inbox: /);
    expect((await api(d, 'POST', '/sandbox/instances/9-9/messages', { from: '5511999990000', text: 'x' })).status).toBe(404);
    expect((await api(d, 'POST', '/sandbox/instances/..%2Fetc/messages', { from: '5511999990000', text: 'x' })).status).toBe(400);

    expect((await api(d, 'POST', '/admin/instances', { inbox: inbox.id, account: account.id })).status).toBe(201);
    await scanSandbox(d, key, '5511966665555');
    const noText = await api(d, 'POST', `/sandbox/instances/${key}/messages`, { from: '5511999990000' });
    expect(noText).toMatchObject({ status: 400, json: { message: 'text: is required for type text' } });
    const badReason = await api(d, 'POST', `/sandbox/instances/${key}/disconnect`, { reason: 'meteor' });
    expect(badReason.status).toBe(400);
    expect(badReason.json.message).toMatch(/^reason: /);
    expect((await api(d, 'GET', `/sandbox/instances/${key}/outbox`)).json).toEqual({ messages: [] });

    // /global-status: primary, workers, totals, instances; no tokens, no QR strings.
    const { json: gs } = await api(d, 'GET', '/global-status');
    expect(Object.keys(gs).sort()).toEqual(['hosts', 'instances', 'primary', 'totals', 'workers']);
    expect(gs.hosts).toEqual([expect.objectContaining({ self: true, alive: true, draining: false, instances: 1, open: 1, authStore: 'file', workers: { total: 2, ready: 2 } })]);
    expect(gs.primary).toMatchObject({ pid: expect.any(Number) as unknown, version: expect.any(String) as unknown });
    expect(gs.workers).toHaveLength(2);
    expect((gs.workers as Array<Record<string, unknown>>)[0]).toMatchObject({ id: 0, ready: true, restarts: 0 });
    const inst = (gs.instances as Array<Record<string, unknown>>).find((i) => i.instance === key);
    expect(inst).toMatchObject({ account: account.id, inbox: inbox.id, desired: 'running', state: 'open', phone: '5511966665555', qrAttempts: 0 });
    expect(inst).toHaveProperty('counters.relayed');
    expect(inst).toHaveProperty('queues.inbound');
    expect(JSON.stringify(gs)).not.toContain(ADMIN);
    expect(JSON.stringify(gs)).not.toContain(env.WEBHOOK_SECRET!);
    expect((await fetch(`${d.base}/global-status`)).status).toBe(401);
    expect((await fetch(`${d.base}/global-status`, { headers: { authorization: 'Bearer e2e-status-token-0123' } })).status).toBe(200);
    expect((await fetch(`${d.base}/admin/instances`, { headers: { authorization: 'Bearer e2e-status-token-0123' } })).status).toBe(401);

    // /metrics: Prometheus text, per-instance state.
    const metrics = await fetch(`${d.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await metrics.text();
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (-?[0-9.]+(e[+-]?\d+)?|NaN|\+Inf|-Inf)$/;
    for (const line of text.split('\n').filter((l) => l !== '')) {
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      expect(line).toMatch(sample);
    }
    expect(text).toContain(`ponte_instance_state{instance="${key}",state="open"} 1`);
    expect(text).toContain('ponte_workers{ready="true"} 2');
    const self = (gs.hosts as Array<{ id: string }>)[0]!.id;
    expect(text).toContain(`ponte_host_up{host="${self}"} 1`);
    expect(text).toContain(`ponte_host_instances{host="${self}"} 1`);
    expect(text).toMatch(/# TYPE ponte_messages_relayed_total counter/);

    const cli = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/instance.ts', 'list'], {
      cwd: process.cwd(),
      env: { PATH: process.env.PATH ?? '', PONTE_URL: d.base, ADMIN_TOKEN: ADMIN },
    });
    expect(cli.stdout).toMatch(new RegExp(`^${key}\\s+running\\s+worker \\d+\\s+open \\+5511966665555`, 'm'));

    expect((await api(d, 'POST', `/sandbox/instances/${key}/disconnect`, { reason: 'loggedOut' })).status).toBe(200);
    await until('logged out', async () => (await instanceStatus(d, key))?.state === 'logged_out', d);
    expect(await stopDaemon(d)).toBe(0);
  }, 120_000);
});

/** Runs the daemon until it exits on its own (a start it refuses), with what it printed. */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: process.cwd(), env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, SERVER_HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
    proc.once('exit', (code) => resolve({ code, output }));
  });
}
