/**
 * Outbound figures for `npm run bench`: the whole daemon (sandbox driver)
 * receives BENCH_OUTBOUND agent messages over BENCH_CHATS conversations as
 * Chatwoot posts them to the inbox webhook. Prints the webhook's response
 * time (p50/p99: what Chatwoot waits for, at most 5 s) and the send
 * throughput until every message is in the sandbox outbox and marked sent.
 */

import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';
import { BENCH_SECRET, type BenchDaemon, percentile, signatureHeaders, sleep, startBenchDaemon } from './bench-daemon.js';

const MESSAGES = Number(process.env.BENCH_OUTBOUND ?? 2000);
const CHATS = Number(process.env.BENCH_CHATS ?? 50);

export async function benchOutbound(redisUrl: string): Promise<void> {
  const double = await startChatwootDouble({ webhooksEnabled: false });
  let daemon: BenchDaemon | undefined;
  try {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id, name: 'bench outbound' });
    daemon = await startBenchDaemon({ redisUrl, double, label: 'out', env: { MAX_WORKERS: '2' } });
    const key = await daemon.linkSandbox(account.id, inbox.id, '5511900000001');

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
    const url = `${daemon.base}/webhook/chatwoot/${key}?token=${BENCH_SECRET}`;
    // Chatwoot's Sidekiq posts webhooks concurrently; 10 at a time here.
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next < payloads.length) {
          const body = payloads[next++]!;
          const t0 = performance.now();
          const res = await fetch(url, { method: 'POST', headers: signatureHeaders(inbox.secret, body), body });
          await res.arrayBuffer();
          latencies.push(performance.now() - t0);
        }
      }),
    );
    // Chatwoot shows an agent message as sent from its creation: count what Ponte sent on WhatsApp.
    for (;;) {
      const totals = (await daemon.call('GET', '/global-status')).json.totals as { sent?: number } | undefined;
      if ((totals?.sent ?? 0) >= MESSAGES) break;
      await sleep(50);
    }
    const seconds = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(`outbound: ${MESSAGES} agent messages over ${CHATS} conversations, one instance`);
    console.log(`  inbox webhook response: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`);
    console.log(`  sent on WhatsApp: ${(MESSAGES / seconds).toFixed(0)} msg/s`);
  } finally {
    await daemon?.stop();
    await double.close();
  }
}
