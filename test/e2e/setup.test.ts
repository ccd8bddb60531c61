/**
 * The operator's first steps, black box: `npm run setup` (the real script as
 * a child process, stdin not a terminal) against the Chatwoot double writes
 * a `.env` the configuration loader accepts, or refuses with the reason and
 * writes nothing; then the daemon started from that file keeps `/readyz`
 * false, with the reason, while Chatwoot refuses its token, accepts
 * webhooks all the same, and turns ready once the token is accepted.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import dotenv from 'dotenv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { type Daemon, startDaemon, until } from '../support/daemon.js';
import { tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix, testRedisUrl } from '../support/redis.js';
import { freePort } from '../../src/redis/redis-server.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/chatwoot-webhooks');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node --import tsx scripts/setup.ts …args`, stdin a closed pipe (not a terminal), only `env` in its environment. */
function setup(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'scripts/setup.ts', ...args], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  proc.stdin.end();
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => proc.once('close', (code) => resolve({ code, stdout, stderr })));
}

const SECRETS = ['WEBHOOK_SECRET', 'ADMIN_TOKEN', 'STATUS_TOKEN'] as const;

describe('npm run setup', () => {
  let double: ChatwootDouble;
  let dir: string;
  let account: number;
  let n = 0;
  /** A fresh .env path in the test folder. */
  const envFile = (): string => join(dir, `env-${++n}`);

  beforeAll(async () => {
    double = await startChatwootDouble({ webhooksEnabled: false });
    account = double.addAccount().id;
    dir = await tempDir('ponte-setup-');
  });

  afterAll(async () => {
    await tearDown({ close: [double], dir });
  });

  it('from flags: a .env (mode 0600) the loader accepts, three different secrets, the only admin account as default; the token never printed', async () => {
    const file = envFile();
    const r = await setup(['--chatwoot-url', double.url, '--token', double.token, '--public-url', 'http://127.0.0.1:3999/', '--dotenv', file, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const env = dotenv.parse(readFileSync(file));
    const config = loadConfig(env);
    expect(config.chatwoot).toMatchObject({ baseUrl: double.url, apiAccessToken: double.token, defaultAccountId: account });
    expect(config.server.publicUrl).toBe('http://127.0.0.1:3999');
    const secrets = SECRETS.map((k) => env[k] ?? '');
    expect(new Set(secrets).size).toBe(3);
    for (const s of secrets) expect(s.length).toBeGreaterThanOrEqual(32);
    expect(config.webhook.secret).toBe(env.WEBHOOK_SECRET);
    expect(config.auth).toEqual({ adminToken: env.ADMIN_TOKEN, statusToken: env.STATUS_TOKEN });
    expect(r.stdout).toContain('administrator of "Conta 1" (account 1)');
    for (const s of [double.token, ...secrets]) expect(r.stdout + r.stderr).not.toContain(s);
  });

  it('from the environment; a user administering two accounts gets no default account', async () => {
    const second = double.addAccount().id;
    const token = double.addUserToken({ name: 'Dona', email: 'dona@loja.com', roles: { [account]: 'administrator', [second]: 'administrator' } });
    const file = envFile();
    const r = await setup(['--dotenv', file], { CHATWOOT_BASE_URL: `${double.url}/app/accounts/1/dashboard`, CHATWOOT_API_ACCESS_TOKEN: token, PUBLIC_URL: 'http://localhost:3000' });
    expect(r.code, r.stderr).toBe(0);
    const env = dotenv.parse(readFileSync(file));
    expect(env.CHATWOOT_BASE_URL).toBe(double.url);
    expect(env.CHATWOOT_API_ACCESS_TOKEN).toBe(token);
    expect(env.DEFAULT_CHATWOOT_ACCOUNT_ID).toBeUndefined();
    expect(r.stdout).toContain('dona@loja.com');
  });

  it.each([
    ['a wrong token', () => 'not-a-token', /refused the access token \(401 Invalid Access Token\)/],
    ['an agent bot’s token', () => double.addAgentBotToken(), /agent bot's token/],
    ['an agent’s token', () => double.addUserToken({ name: 'Ana', email: 'ana@loja.com', roles: { [account]: 'agent' } }), /ana@loja\.com\) is not an administrator/],
  ])('%s: refused with the reason, nothing written', async (_what, token, reason) => {
    const file = envFile();
    const t = token();
    const r = await setup(['--chatwoot-url', double.url, '--public-url', 'http://127.0.0.1:3000', '--dotenv', file, '--yes'], { CHATWOOT_API_ACCESS_TOKEN: t });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toContain('Nothing was written');
    expect(r.stderr).not.toContain(t);
    expect(existsSync(file)).toBe(false);
  });

  it('Chatwoot not listening: refused, naming the URL', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const file = envFile();
    const r = await setup(['--chatwoot-url', url, '--token', 'x', '--dotenv', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Chatwoot at ${url} refused the connection (ECONNREFUSED)`);
    expect(existsSync(file)).toBe(false);
  });

  it('a value missing without a terminal: exit 2 naming its flag', async () => {
    const file = envFile();
    const r = await setup(['--chatwoot-url', double.url, '--dotenv', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/access token is missing: pass --token <token> \(or set CHATWOOT_API_ACCESS_TOKEN\); stdin is not a terminal/);
    const cw = await setup(['--token', 'x', '--dotenv', file]);
    expect(cw.stderr).toMatch(/--chatwoot-url <url>/);
    const pub = await setup(['--chatwoot-url', 'https://chat.example.invalid', '--token', 'x', '--dotenv', file]);
    expect(pub.stderr).toMatch(/--public-url <url>/);
    expect(existsSync(file)).toBe(false);
  });

  it('a loopback public URL while Chatwoot is elsewhere: refused with why', async () => {
    const file = envFile();
    const r = await setup(['--chatwoot-url', 'https://chat.example.invalid', '--token', 'x', '--public-url', 'http://127.0.0.1:3000', '--dotenv', file, '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/http:\/\/127\.0\.0\.1:3000 is a loopback address, but Chatwoot is reached at chat\.example\.invalid/);
    expect(existsSync(file)).toBe(false);
  });

  it('an existing .env: left alone with --yes, replaced (mode 0600) with --force', async () => {
    const file = envFile();
    writeFileSync(file, 'WEBHOOK_SECRET=keep-me-0123456789\n');
    chmodSync(file, 0o644);
    const args = ['--chatwoot-url', double.url, '--token', double.token, '--public-url', 'http://127.0.0.1:3000', '--dotenv', file, '--yes'];
    const refused = await setup(args);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already exists and was left as it is.*--force/);
    expect(await readFile(file, 'utf8')).toBe('WEBHOOK_SECRET=keep-me-0123456789\n');
    const forced = await setup([...args, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(dotenv.parse(readFileSync(file)).WEBHOOK_SECRET).not.toBe('keep-me-0123456789');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});

describe('npm start from that .env, while Chatwoot refuses the token', () => {
  let double: ChatwootDouble;
  let dir: string;
  const prefix = randomPrefix();
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    double = await startChatwootDouble({ webhooksEnabled: false });
    double.addAccount();
    dir = await tempDir('ponte-setup-daemon-');
  });

  afterAll(async () => {
    await tearDown({ daemons: [daemon], close: [double], prefix, dir });
  });

  it('keeps /readyz false with the reason, still accepts webhooks, logs the failure once, and turns ready once the token works', async () => {
    const file = join(dir, '.env');
    const written = await setup(['--chatwoot-url', double.url, '--token', double.token, '--public-url', 'http://127.0.0.1:3000', '--dotenv', file, '--yes']);
    expect(written.code, written.stderr).toBe(0);
    const env = dotenv.parse(readFileSync(file));

    const undo = double.refuseTokens();
    daemon = await startDaemon(
      {
        ...env,
        REDIS_URL: testRedisUrl(),
        REDIS_PREFIX: prefix,
        WHATSAPP_DRIVER: 'sandbox',
        BAILEYS_AUTH_SESSIONS_PARENT_DIR: join(dir, 'sessions'),
        MAX_WORKERS: '1',
        SERVER_LOG_LEVEL: 'info',
        CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'error',
        OUTAGE_PROBE_MIN_DELAY_MS: '100',
        OUTAGE_PROBE_MAX_DELAY_MS: '400',
      },
      { until: 'listening' },
    );
    const d = daemon;
    const readyz = async () => {
      const res = await fetch(`${d.base}/readyz`);
      return { status: res.status, body: (await res.json()) as { ready: boolean; checks: Record<string, boolean>; reasons?: Record<string, string> } };
    };

    const notReady = await until('/readyz to say Chatwoot refused the token', async () => {
      const r = await readyz();
      return r.body.reasons?.chatwoot?.includes('refused the access token') ? r : undefined;
    }, d);
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatchObject({ ready: false, checks: { chatwoot: false } });
    expect(JSON.stringify(notReady.body)).not.toContain(double.url);
    // Several failed checks later it still says one line about it, and the daemon runs on.
    await until('two more failed checks', () => Promise.resolve((double.calls.byRoute()['GET /api/v1/profile'] ?? 0) >= 6), d);

    const command = readFileSync(join(FIXTURES, 'message_created.command_incoming.json'), 'utf8');
    const hook = await fetch(`${d.base}/webhook/comando?token=${env.WEBHOOK_SECRET}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: command });
    expect(hook.status).toBe(200);
    expect(await hook.json()).toMatchObject({ ok: true, accepted: 'direct' });

    undo();
    const ready = await until('/readyz 200', async () => {
      const r = await readyz();
      return r.status === 200 ? r : undefined;
    }, d);
    expect(ready.body).toMatchObject({ ready: true, checks: { chatwoot: true, redis: true, workers: true } });
    expect(ready.body.reasons).toBeUndefined();

    const lines = d.output.join('').split('\n').filter((l) => l.includes('Chatwoot check'));
    expect(lines.filter((l) => l.includes('Chatwoot check failed:'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('Chatwoot check passed after failing'))).toHaveLength(1);
    expect(lines.join('\n')).toContain('refused the access token (401 Invalid Access Token)');
    expect(d.output.join('')).not.toContain(double.token);
  });
});
