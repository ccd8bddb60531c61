/**
 * Outbound figures for `npm run bench`: the whole daemon (sandbox driver)
 * receives BENCH_OUTBOUND agent messages over BENCH_CHATS conversations as
 * Chatwoot posts them to the inbox webhook. Prints the webhook's response
 * time (p50/p99: what Chatwoot waits for, at most 5 s) and the send
 * throughput until every message is in the sandbox outbox and marked sent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../src/redis/redis-server.js';
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';

const MESSAGES = Number(process.env.BENCH_OUTBOUND ?? 2000);
const CHATS = Number(process.env.BENCH_CHATS ?? 50);
const TOKEN = 'bench-admin-token-0123456789';
const SECRET = 'bench-webhook-secret-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function call(base: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return (await res.json().catch(() => ({}))) as Record<string, unknown>;
}

export async function benchOutbound(redisUrl: string): Promise<void> {
  const double = await startChatwootDouble({ webhooksEnabled: false });
  const sessions = await mkdtemp(join(tmpdir(), 'ponte-bench-out-'));
  const prefix = `ponte-bench:${process.pid}:out:`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  try {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id, name: 'bench outbound' });
    const key = `${account.id}-${inbox.id}`;
    proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        CHATWOOT_BASE_URL: double.url,
        CHATWOOT_API_ACCESS_TOKEN: double.token,
        WEBHOOK_SECRET: SECRET,
        ADMIN_TOKEN: TOKEN,
        REDIS_URL: redisUrl,
        REDIS_PREFIX: prefix,
        MAX_WORKERS: '2',
        WHATSAPP_DRIVER: 'sandbox',
        BAILEYS_AUTH_SESSIONS_PARENT_DIR: sessions,
        SANDBOX_QR_INTERVAL_MS: '60000',
        SERVER_PORT: String(port),
        SERVER_HOST: '127.0.0.1',
        SERVER_LOG_LEVEL: 'error',
        CHATWOOT_QUEUE_WORKER_LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    while (!(await fetch(`${base}/readyz`).then((r) => r.ok, () => false))) await sleep(100);
    await call(base, 'POST', '/admin/instances', { inbox: inbox.id, account: account.id });
    while (!(await fetch(`${base}/admin/instances/${key}/qr?format=text`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.ok, () => false))) await sleep(100);
    await call(base, 'POST', `/sandbox/instances/${key}/scan`, { phone: '5511900000001' });
    for (;;) {
      const s = await call(base, 'GET', '/global-status');
      if ((s.instances as Array<{ state?: string }> | undefined)?.[0]?.state === 'open') break;
      await sleep(100);
    }

    // Conversations and agent messages exist in Chatwoot first; then their webhooks arrive.
    const conversations: Array<{ id: number; jid: string }> = [];
    for (let c = 0; c < CHATS; c++) {
      const phone = `55119${String(20_000_000 + c)}`;
      const contact = await (
        await fetch(`${double.url}/api/v1/accounts/${account.id}/contacts`, {
          method: 'POST',
          headers: { api_access_token: double.token, 'content-type': 'application/json' },
          body: JSON.stringify({ inbox_id: inbox.id, name: `Cliente ${c}`, phone_number: `+${phone}`, identifier: `${phone}@s.whatsapp.net`, source_id: `${phone}@s.whatsapp.net` }),
        })
      ).json() as { payload: { contact: { id: number } } };
      const conv = await (
        await fetch(`${double.url}/api/v1/accounts/${account.id}/conversations`, {
          method: 'POST',
          headers: { api_access_token: double.token, 'content-type': 'application/json' },
          body: JSON.stringify({ source_id: `${phone}@s.whatsapp.net`, inbox_id: inbox.id, contact_id: contact.payload.contact.id }),
        })
      ).json() as { id: number };
      conversations.push({ id: conv.id, jid: `${phone}@s.whatsapp.net` });
    }
    const payloads = Array.from({ length: MESSAGES }, (_, i) => {
      const conv = conversations[i % CHATS]!;
      const m = double.createAgentMessage(account.id, conv.id, { content: `resposta ${i}` });
      return JSON.stringify({
        event: 'message_created',
        id: m.id,
        content: m.content,
        message_type: 'outgoing',
        private: false,
        source_id: null,
        content_attributes: {},
        account: { id: account.id, name: 'bench' },
        inbox: { id: inbox.id, name: 'bench outbound' },
        conversation: { id: conv.id, contact_inbox: { source_id: conv.jid }, meta: { sender: {} } },
        sender: { id: 1, name: 'Agente', type: 'user' },
      });
    });

    const latencies: number[] = [];
    const start = performance.now();
    const url = `${base}/webhook/chatwoot/${key}?token=${SECRET}`;
    // Chatwoot's Sidekiq posts webhooks concurrently; 10 at a time here.
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next < payloads.length) {
          const body = payloads[next++]!;
          const t0 = performance.now();
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          await res.arrayBuffer();
          latencies.push(performance.now() - t0);
        }
      }),
    );
    for (;;) {
      const sent = conversations.reduce((n, c) => n + double.messages(account.id, c.id).filter((m) => m.status === 'sent').length, 0);
      if (sent >= MESSAGES) break;
      await sleep(50);
    }
    const seconds = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(`outbound: ${MESSAGES} agent messages over ${CHATS} conversations, one instance`);
    console.log(`  inbox webhook response: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`);
    console.log(`  sent on WhatsApp and marked sent in Chatwoot: ${(MESSAGES / seconds).toFixed(0)} msg/s`);
  } finally {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc!.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    await double.close();
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    await redis.quit();
    await rm(sessions, { recursive: true, force: true });
  }
}
