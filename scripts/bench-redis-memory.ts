/**
 * Redis memory per number for `npm run bench`: the whole daemon (sandbox
 * driver) relays BENCH_MEMORY_MESSAGES WhatsApp messages over BENCH_MEMORY_CHATS
 * chats into the Chatwoot double, then sends as many agent replies; after
 * each, the memory of every key under the daemon's prefix is summed
 * (`MEMORY USAGE`), by kind, and printed per 10,000 messages. The sandbox's
 * own records (its outbox) are left out: a real number has none.
 */

import { Redis } from 'ioredis';
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';
import { BENCH_SECRET, type BenchDaemon, signatureHeaders, sleep, startBenchDaemon } from './bench-daemon.js';

const MESSAGES = Number(process.env.BENCH_MEMORY_MESSAGES ?? 10_000);
// Chatwoot takes 200 messages a minute per conversation: 50 each keeps the run under that.
const CHATS = Number(process.env.BENCH_MEMORY_CHATS ?? 200);

/** Bytes used by the keys under `prefix`, by kind (the key's first segment after the prefix). */
async function memoryByKind(redis: Redis, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length === 0) continue;
    const pipeline = redis.pipeline();
    for (const k of keys) pipeline.memory('USAGE', k, 'SAMPLES', '0');
    const sizes = (await pipeline.exec()) ?? [];
    keys.forEach((k, i) => {
      const kind = k.slice(prefix.length).split(':')[0] ?? '?';
      out.set(kind, (out.get(kind) ?? 0) + Number(sizes[i]?.[1] ?? 0));
    });
  } while (cursor !== '0');
  out.delete('sandbox');
  return out;
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

/** Runs `n` requests, `concurrency` at a time. */
async function inParallel(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

export async function benchRedisMemory(redisUrl: string): Promise<void> {
  const double = await startChatwootDouble({ webhooksEnabled: false, messagesPerMinutePerConversation: 1_000_000 });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  let daemon: BenchDaemon | undefined;
  try {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id, name: 'bench memory' });
    daemon = await startBenchDaemon({ redisUrl, double, label: 'mem', env: { OUTBOUND_MARK_READ: 'false' } });
    const key = await daemon.linkSandbox(account.id, inbox.id, '5511900000003');
    const empty = total(await memoryByKind(redis, daemon.prefix));

    const phone = (c: number) => `55119${String(30_000_000 + c)}`;
    await inParallel(MESSAGES, 10, async (i) => {
      await daemon!.call('POST', `/sandbox/instances/${key}/messages`, { from: phone(i % CHATS), pushName: `Cliente ${i % CHATS}`, text: `mensagem número ${i} com um texto de tamanho comum`, id: `MEM${i}` });
    });
    const relayed = () => double.conversations(account.id).reduce((n, c) => n + double.messages(account.id, c.id).filter((m) => m.message_type === 'incoming').length, 0);
    while (relayed() < MESSAGES) await sleep(200);
    const afterInbound = await memoryByKind(redis, daemon.prefix);

    const conversations = double.conversations(account.id).map((c) => ({ id: c.id, jid: `${double.contacts(account.id).find((x) => x.id === c.contact_id)?.phone_number?.slice(1) ?? ''}@s.whatsapp.net` }));
    const url = `${daemon.base}/webhook/chatwoot/${key}?token=${BENCH_SECRET}`;
    await inParallel(MESSAGES, 10, async (i) => {
      const conv = conversations[i % conversations.length]!;
      const m = double.createAgentMessage(account.id, conv.id, { content: `resposta ${i}` });
      const body = JSON.stringify({
        event: 'message_created', id: m.id, content: m.content, message_type: 'outgoing', private: false, source_id: null, content_attributes: {},
        account: { id: account.id }, inbox: { id: inbox.id }, conversation: { id: conv.id, inbox_id: inbox.id, contact_inbox: { source_id: conv.jid }, meta: { sender: {} } }, sender: { id: 1, name: 'Agente', type: 'user' },
      });
      const res = await fetch(url, { method: 'POST', headers: signatureHeaders(inbox.secret, body), body });
      await res.arrayBuffer();
    });
    // Chatwoot shows an agent message as sent from the start: count what Ponte sent on WhatsApp.
    const sent = async () => ((await daemon!.call('GET', '/global-status')).json.totals as { sent?: number } | undefined)?.sent ?? 0;
    while ((await sent()) < MESSAGES) await sleep(200);
    const afterOutbound = await memoryByKind(redis, daemon.prefix);

    const per10k = (bytes: number) => kib((bytes / MESSAGES) * 10_000);
    const inboundBytes = total(afterInbound) - empty;
    const outboundBytes = total(afterOutbound) - total(afterInbound);
    const kinds = [...new Set([...afterInbound.keys(), ...afterOutbound.keys()])].sort();
    console.log(`Redis memory of one number: ${MESSAGES} messages in over ${CHATS} chats, then ${MESSAGES} agent replies (MEMORY USAGE of every key, sandbox records left out)`);
    console.log(`  incoming: ${per10k(inboundBytes)} per 10,000 messages; agent replies: ${per10k(outboundBytes)} per 10,000; both: ${per10k(inboundBytes + outboundBytes)} per 10,000 each way (kept ${30} days)`);
    console.log(`  by kind after both: ${kinds.map((k) => `${k} ${kib(afterOutbound.get(k) ?? 0)}`).join(', ')}`);
  } finally {
    await daemon?.stop();
    await redis.quit();
    await double.close();
  }
}
