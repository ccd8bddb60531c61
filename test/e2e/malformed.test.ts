/**
 * 200 malformed or unauthenticated requests across the daemon's routes:
 * every one gets a 4xx with a reason, none a 5xx, and nothing is created.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN, api, startDaemon, type Daemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { daemonEnv, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';

const SECRET = 'fuzz-webhook-secret-0123456789';
const STATUS = 'fuzz-status-token-0123';

interface Probe {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

function probes(accountId: number, inboxId: number): Probe[] {
  const key = `${accountId}-${inboxId}`;
  const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
  const out: Probe[] = [];
  const badBodies = ['', '{', 'null', '[]', '"text"', '42', '{"inbox":"x","account":1}', '{"inbox":0,"account":1}', '{"inbox":-3,"account":1}', '{"inbox":1.5,"account":1}', '{"inbox":99999999999999,"account":1}', '{"account":1}', '{"inbox":1}', '{"inbox":1,"account":1,"notify":{"account":"a"}}', '{"inbox":[1],"account":{}}'];
  for (const body of badBodies) out.push({ method: 'POST', path: '/admin/instances', headers: admin, body });
  for (const auth of [undefined, 'Bearer', 'Bearer wrong', `Basic ${ADMIN}`, `bearer ${ADMIN}x`]) {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) };
    out.push({ method: 'POST', path: '/admin/instances', headers, body: `{"inbox":${inboxId},"account":${accountId}}` });
    out.push({ method: 'GET', path: '/admin/instances', headers });
    out.push({ method: 'GET', path: '/global-status', headers });
    out.push({ method: 'GET', path: '/metrics', headers });
    out.push({ method: 'POST', path: `/sandbox/instances/${key}/messages`, headers, body: '{"from":"5511999990000","text":"x"}' });
  }
  for (const badKey of ['0-1', '1-0', 'abc', '1--2', '1-2-3', '..', '%2e%2e', '1-2%2F..', ' 1-2', '99999999999-1']) {
    for (const action of ['start', 'stop', 'logout']) out.push({ method: 'POST', path: `/admin/instances/${badKey}/${action}`, headers: admin });
    out.push({ method: 'GET', path: `/admin/instances/${badKey}/qr`, headers: admin });
    out.push({ method: 'POST', path: `/sandbox/instances/${badKey}/messages`, headers: admin, body: '{"from":"5511999990000","text":"x"}' });
  }
  const messageBodies = ['{}', '{"from":"1"}', '{"from":"5511999990000"}', '{"from":"5511999990000","type":"image"}', '{"from":"5511999990000","type":"image","media":"***"}', '{"from":"5511999990000","type":"location","latitude":91,"longitude":0}', '{"from":"5511999990000","type":"poll","text":"q","options":["a"]}', '{"from":"5511999990000","type":"reaction","targetId":"X"}', '{"from":"5511999990000","type":"teleport","text":"x"}', '{"from":"5511999990000","text":"x","id":"has spaces"}', '{"from":"5511999990000","text":"x","group":{"jid":"nope"}}', '{"from":5511999990000,"text":"x"}'];
  for (const body of messageBodies) out.push({ method: 'POST', path: `/sandbox/instances/${key}/messages`, headers: admin, body });
  for (const body of ['{}', '{"id":""}', '{"id":"X","status":"seen"}']) out.push({ method: 'POST', path: `/sandbox/instances/${key}/receipts`, headers: admin, body });
  for (const body of ['{}', '{"reason":"meteor"}', '{"reason":42}']) out.push({ method: 'POST', path: `/sandbox/instances/${key}/disconnect`, headers: admin, body });
  for (const body of ['{}', '{"phone":"abc"}', '{"phone":"12"}']) out.push({ method: 'POST', path: `/sandbox/instances/${key}/scan`, headers: admin, body });
  for (const body of ['{}', '{"phone":"x"}']) out.push({ method: 'POST', path: `/admin/instances/${key}/pairing-code`, headers: admin, body });
  const hook = `{"event":"message_created","id":1,"content":"erga ${inboxId} ${accountId}","message_type":"incoming","account":{"id":${accountId}},"inbox":{"id":${inboxId}},"conversation":{"id":1},"sender":{"phone_number":"+5521998765432"}}`;
  for (const [path, headers] of [
    ['/webhook/comando', { 'content-type': 'application/json' }],
    ['/webhook/comando?token=', { 'content-type': 'application/json' }],
    ['/webhook/comando?token=wrong', { 'content-type': 'application/json' }],
    ['/webhook/comando', { 'content-type': 'application/json', 'x-ponte-token': 'wrong' }],
    [`/webhook/comando?token=${SECRET}x`, { 'content-type': 'application/json' }],
  ] as Array<[string, Record<string, string>]>) {
    for (const body of [hook, '{', '']) out.push({ method: 'POST', path, headers, body });
  }
  for (const body of ['{', '[]', 'null', '"x"', '{"id":1}', '{"event":7}', '<xml/>']) out.push({ method: 'POST', path: `/webhook/comando?token=${SECRET}`, headers: { 'content-type': 'application/json' }, body });
  // Right token, but no valid Chatwoot signature (the signing secret is configured).
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < 50; i++) {
    const variants: Array<Record<string, string>> = [
      {},
      { 'x-chatwoot-timestamp': String(now) },
      { 'x-chatwoot-signature': `sha256=${'0'.repeat(64)}` },
      { 'x-chatwoot-timestamp': 'yesterday', 'x-chatwoot-signature': `sha256=${'a'.repeat(64)}` },
      { 'x-chatwoot-timestamp': String(now - 3600 - i), 'x-chatwoot-signature': `sha256=${'b'.repeat(64)}` },
      { 'x-chatwoot-timestamp': String(now), 'x-chatwoot-signature': `sha256=${i.toString(16).padStart(64, 'c')}` },
      { 'x-chatwoot-timestamp': String(now), 'x-chatwoot-signature': 'md5=abc' },
    ];
    out.push({ method: 'POST', path: `/webhook/comando?token=${SECRET}`, headers: { 'content-type': 'application/json', ...variants[i % variants.length]! }, body: hook });
  }
  for (const path of ['/admin', '/admin/instances/1-1/explode', '/sandbox', '/webhook', '/webhook/comando/extra', '/.env', '/../../etc/passwd', '/global-status/x']) {
    out.push({ method: 'GET', path, headers: admin });
    out.push({ method: 'DELETE', path, headers: admin });
  }
  for (const method of ['PUT', 'DELETE', 'PATCH']) out.push({ method, path: '/admin/instances', headers: admin, body: '{}' });
  out.push({ method: 'POST', path: '/admin/instances', headers: { ...admin, 'content-type': 'text/plain' }, body: 'inbox=1&account=1' });
  out.push({ method: 'POST', path: '/admin/instances', headers: admin, body: `{"inbox":1,"account":1,"pad":"${'x'.repeat(25 * 1024 * 1024)}"}` });
  return out;
}

function reasonOf(text: string): string {
  try {
    const j = JSON.parse(text) as { message?: unknown; error?: unknown };
    return typeof j.message === 'string' ? j.message : typeof j.error === 'string' ? j.error : '';
  } catch {
    return '';
  }
}

describe('malformed and unauthenticated requests', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let dir: string;
  const prefix = randomPrefix();

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir }));

  it('200 of them: each a 4xx with a reason, never a 5xx, nothing created', async () => {
    double = await startChatwootDouble();
    const accountId = double.addAccount().id;
    const inboxId = double.addInbox({ accountId }).id;
    dir = await tempDir('ponte-fuzz-');
    daemon = await startDaemon(
      daemonEnv(
        { double, sessions: dir, prefix },
        {
          WEBHOOK_SECRET: SECRET,
          CHATWOOT_ACCOUNT_WEBHOOK_SECRET: 'fuzz-signing-secret',
          WEBHOOK_AUTHORIZED_PHONE_NUMBERS: '+5521998765432',
          STATUS_TOKEN: STATUS,
          MAX_WORKERS: '1',
          SANDBOX_QR_INTERVAL_MS: undefined,
          SERVER_LOG_LEVEL: 'error',
          CHATWOOT_QUEUE_WORKER_LOG_LEVEL: undefined,
        },
      ),
    );
    const all = probes(accountId, inboxId);
    expect(all.length).toBeGreaterThanOrEqual(200);
    const failures: string[] = [];
    for (const p of all) {
      const res = await fetch(`${daemon.base}${p.path}`, { method: p.method, headers: p.headers ?? {}, ...(p.body !== undefined && p.method !== 'GET' ? { body: p.body } : {}) });
      const text = await res.text();
      const reason = reasonOf(text);
      if (res.status < 400 || res.status >= 500 || reason === '') failures.push(`${p.method} ${p.path} ${(p.body ?? '').slice(0, 60)} → ${res.status} ${text.slice(0, 120)}`);
    }
    expect(failures).toEqual([]);
    expect((await api(daemon, 'GET', '/admin/instances')).json.instances).toEqual([]);
    expect(double.contacts(accountId)).toEqual([]);
    expect(double.conversations(accountId)).toEqual([]);

    // The sandbox routes of a running, linked instance: garbage gets a 4xx too, never a 500.
    const key = `${accountId}-${inboxId}`;
    await api(daemon, 'POST', '/admin/instances', { inbox: inboxId, account: accountId });
    await until('a QR', async () => (await api(daemon, 'GET', '/admin/instances')).json.instances !== undefined && (await fetch(`${daemon.base}/admin/instances/${key}/qr?format=text`, { headers: { authorization: `Bearer ${ADMIN}` } })).ok, daemon);
    await api(daemon, 'POST', `/sandbox/instances/${key}/scan`, { phone: '5511933332222' });
    await until('linked', async () => (await fetch(`${daemon.base}/admin/instances/${key}/qr?format=text`, { headers: { authorization: `Bearer ${ADMIN}` } })).status === 404, daemon);
    const live: Probe[] = [];
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    for (const from of ['@@@', '@lid', 'abc@s.whatsapp.net', ':1@lid', '++', '5511999990000@g.us']) live.push({ method: 'POST', path: `/sandbox/instances/${key}/messages`, headers: admin, body: JSON.stringify({ from, text: 'x' }) });
    live.push({ method: 'POST', path: `/sandbox/instances/${key}/messages`, headers: admin, body: '{"from":"5511999990000","type":"vote","targetId":"NOPOLL","options":["a"]}' });
    for (const id of ['UNKNOWN', 'X'.repeat(64)]) live.push({ method: 'POST', path: `/sandbox/instances/${key}/receipts`, headers: admin, body: JSON.stringify({ id, status: 'read' }) });
    live.push({ method: 'POST', path: `/sandbox/instances/${key}/scan`, headers: admin, body: '{"phone":"5511933332222"}' });
    const liveFailures: string[] = [];
    for (const p of live) {
      const res = await fetch(`${daemon.base}${p.path}`, { method: p.method, headers: p.headers ?? {}, body: p.body ?? '' });
      const text = await res.text();
      if (res.status < 400 || res.status >= 500 || reasonOf(text) === '') liveFailures.push(`${p.method} ${p.path} ${(p.body ?? '').slice(0, 60)} → ${res.status} ${text.slice(0, 120)}`);
    }
    expect(liveFailures).toEqual([]);
    expect(double.conversations(accountId)).toEqual([]);
  }, 120_000);
});
