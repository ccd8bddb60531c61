/**
 * dashboard.sh under tmux against a running daemon: the pane shows the
 * workers, the hosts (this one's row, above the instances) and the instance
 * with its state, number and host; an unreachable daemon gives a clear line;
 * Ctrl-C ends it cleanly.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/redis/redis-server.js';
import { api, startDaemon, until, type Daemon } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { daemonEnv, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const STATUS = 'dash-status-token-0123';
const HOST = 'dash-host-1';

function tmux(...args: string[]): string {
  return execFileSync('tmux', args, { encoding: 'utf8' });
}

function alive(session: string): boolean {
  return spawnSync('tmux', ['has-session', '-t', session]).status === 0;
}

describe.skipIf(!hasTmux)('dashboard.sh under tmux', () => {
  const sessions: string[] = [];
  let double: ChatwootDouble | undefined;
  let daemon: Daemon | undefined;
  let dir = '';
  const prefix = randomPrefix();

  afterAll(async () => {
    for (const s of sessions) if (alive(s)) tmux('kill-session', '-t', s);
    await tearDown({ daemons: [daemon], close: [double], prefix, dir });
  });

  function open(url: string): string {
    const name = `ponte-dash-${randomBytes(4).toString('hex')}`;
    sessions.push(name);
    tmux('new-session', '-d', '-s', name, '-x', '200', '-y', '40', `env PONTE_STATUS_TOKEN=${STATUS} DASHBOARD_INTERVAL=1 ./dashboard.sh ${url}`);
    return name;
  }

  const pane = (name: string) => tmux('capture-pane', '-p', '-t', name);

  it('shows workers, hosts and instances live, and exits on Ctrl-C', async () => {
    double = await startChatwootDouble({ webhooksEnabled: false });
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id });
    dir = await tempDir('ponte-dash-');
    daemon = await startDaemon(
      daemonEnv(
        { double, sessions: dir, prefix },
        { WEBHOOK_SECRET: 'dash-webhook-secret-0123456789', STATUS_TOKEN: STATUS, HOST_ID: HOST, MAX_WORKERS: '2', SERVER_LOG_LEVEL: 'error', CHATWOOT_QUEUE_WORKER_LOG_LEVEL: undefined },
      ),
    );
    const key = `${account.id}-${inbox.id}`;
    await api(daemon, 'POST', '/admin/instances', { inbox: inbox.id, account: account.id });
    const name = open(daemon.base);
    await until('awaiting_scan on the dashboard', () => Promise.resolve(pane(name).includes('awaiting_scan')));
    await api(daemon, 'POST', `/sandbox/instances/${key}/scan`, { phone: '5511944443333' });
    const screen = await until('the linked instance on the dashboard', () => {
      const p = pane(name);
      return Promise.resolve(p.includes('+5511944443333') ? p : undefined);
    });
    expect(screen).toMatch(new RegExp(`^Ponte \\d+\\.\\d+\\.\\d+  host ${HOST},`, 'm'));
    expect(screen).toMatch(/workers: 0:ready .*\|\s+1:ready/);
    expect(screen).toMatch(/instances 1 \(1 open\)/);
    // The hosts table above the instances: this host (marked *), alive, its one number open, both workers ready.
    const hostsHead = screen.search(/^host\s+status\s+numbers\s+open\s+workers\s+uptime$/m);
    const instancesHead = screen.search(/^instance\s+state\s+number\s+host\s+wk\b/m);
    expect(hostsHead).toBeGreaterThan(-1);
    expect(instancesHead).toBeGreaterThan(hostsHead);
    expect(screen).toMatch(new RegExp(`^${HOST} \\*\\s+alive\\s+1\\s+1\\s+2/2\\s+\\d+[smhd]`, 'm'));
    expect(screen).toMatch(new RegExp(`^${key}\\s+open\\s+\\+5511944443333\\s+${HOST}\\s+[01]\\s+\\d`, 'm'));
    // WhatsApp's new-chat cap shows beside the instance, with its end.
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/limits`, { newChatCap: { status: 'CAPPED', cycleEndsInMs: 3600_000 } })).status).toBe(200);
    await until('the cap on the dashboard', () => Promise.resolve(new RegExp(`^${key}\\s+open .*new-chat cap until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC`, 'm').test(pane(name)) || undefined));

    tmux('send-keys', '-t', name, 'C-c');
    await until('the dashboard to exit', () => Promise.resolve(!alive(name)));
  }, 60_000);

  it('says so when the daemon does not answer', async () => {
    const port = await freePort();
    const name = open(`http://127.0.0.1:${port}`);
    const screen = await until('the unreachable line', () => {
      const p = pane(name);
      return Promise.resolve(p.includes('is not answering') ? p : undefined);
    });
    expect(screen).toContain(`Ponte at http://127.0.0.1:${port} is not answering`);
    tmux('send-keys', '-t', name, 'C-c');
    await until('the dashboard to exit', () => Promise.resolve(!alive(name)));
  }, 30_000);
});
