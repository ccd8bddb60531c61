/**
 * Outbound figures for `npm run bench`: the whole daemon (sandbox driver)
 * receives agent messages over BENCH_CHATS conversations as Chatwoot posts
 * them to the inbox webhook. Two runs on one daemon and one instance:
 *   1. paced: BENCH_WEBHOOK_RATE webhooks a second for BENCH_STEADY_SECONDS,
 *      each timed from request to answer (what Chatwoot waits for, at most
 *      5 s): p50 and p99;
 *   2. burst: BENCH_OUTBOUND webhooks, 10 at a time as Chatwoot's Sidekiq
 *      posts them, until every message is sent on WhatsApp (the sandbox
 *      outbox): messages per second.
 */

import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';
import { BENCH_SECRET, type BenchDaemon, daemonCpu, percentile, signatureHeaders, sleep, startBenchDaemon } from './bench-daemon.js';
import { atLeast, atMost, type Figures } from './bench-figures.js';

const MESSAGES = Number(process.env.BENCH_OUTBOUND ?? 2000);
const CHATS = Number(process.env.BENCH_CHATS ?? 50);
const RATE = Number(process.env.BENCH_WEBHOOK_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_STEADY_SECONDS ?? 15);

export async function benchOutbound(redisUrl: string, figures: Figures): Promise<void> {
  const double = await startChatwootDouble({ webhooksEnabled: false });
  let daemon: BenchDaemon | undefined;
  try {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id, name: 'bench outbound' });
    daemon = await startBenchDaemon({ redisUrl, double, label: 'out', env: { MAX_WORKERS: '2' } });
    const key = await daemon.linkSandbox(account.id, inbox.id, '5511900000001');
    const d = daemon;

    // Conversations exist in Chatwoot first; then agent messages are created and their webhooks arrive.
    const api = async <T>(path: string, body: unknown): Promise<T> =>
      (await (
        await fetch(`${double.url}/api/v1/accounts/${account.id}/${path}`, {
          method: 'POST',
          headers: { api_access_token: double.token, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).json()) as T;
    const conversations: Array<{ id: number; jid: string }> = [];
    for (let c = 0; c < CHATS; c++) {
      const phone = `55119${String(20_000_000 + c)}`;
      const jid = `${phone}@s.whatsapp.net`;
      const contact = await api<{ payload: { contact: { id: number } } }>('contacts', { inbox_id: inbox.id, name: `Cliente ${c}`, phone_number: `+${phone}`, identifier: jid, source_id: jid });
      const conv = await api<{ id: number }>('conversations', { source_id: jid, inbox_id: inbox.id, contact_id: contact.payload.contact.id });
      conversations.push({ id: conv.id, jid });
    }
    let made = 0;
    const payload = (): string => {
      const conv = conversations[made % CHATS]!;
      const m = double.createAgentMessage(account.id, conv.id, { content: `resposta ${made++}` });
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
    };
    const url = `${d.base}/webhook/chatwoot/${key}?token=${BENCH_SECRET}`;
    /** Posts one webhook; its response time in ms. */
    const post = async (body: string): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(url, { method: 'POST', headers: signatureHeaders(inbox.secret, body), body });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`the inbox webhook answered ${res.status}`);
      return performance.now() - t0;
    };
    // Chatwoot shows an agent message as sent from its creation: count what Ponte sent on WhatsApp.
    const sentAtLeast = async (count: number) => {
      for (;;) {
        const totals = (await d.call('GET', '/global-status')).json.totals as { sent?: number } | undefined;
        if ((totals?.sent ?? 0) >= count) return;
        await sleep(50);
      }
    };
    const section = 'outbound';

    // 1. A steady offered rate, each webhook on its own as Chatwoot posts them.
    const paced = RATE * SECONDS;
    const bodies = Array.from({ length: paced }, payload);
    const latencies: number[] = [];
    const inFlight: Array<Promise<void>> = [];
    const start = performance.now();
    for (let i = 0; i < paced; i++) {
      const wait = start + (i * 1000) / RATE - performance.now();
      if (wait > 0) await sleep(wait);
      inFlight.push(post(bodies[i]!).then((ms) => void latencies.push(ms)));
    }
    await Promise.all(inFlight);
    await sentAtLeast(made);
    latencies.sort((a, b) => a - b);
    console.log(`outbound: ${RATE} webhooks/s for ${SECONDS} s over ${CHATS} conversations, one instance`);
    figures.add({ section, name: `inbox webhook answer at ${RATE}/s, p50`, value: percentile(latencies, 50), unit: 'ms', digits: 1 });
    figures.add({ section, name: `inbox webhook answer at ${RATE}/s, p99`, value: percentile(latencies, 99), unit: 'ms', digits: 1, target: atMost(20) });

    // 2. A burst, 10 webhooks at a time, until every message is sent.
    const burst = Array.from({ length: MESSAGES }, payload);
    const before = made - MESSAGES;
    const cpuBefore = await daemonCpu(d);
    const burstStart = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next < burst.length) await post(burst[next++]!);
      }),
    );
    await sentAtLeast(before + MESSAGES);
    const seconds = (performance.now() - burstStart) / 1000;
    const cpuAfter = await daemonCpu(d);
    console.log(`outbound: a burst of ${MESSAGES} agent messages, 10 webhooks at a time`);
    figures.add({ section, name: 'agent replies sent on WhatsApp', value: MESSAGES / seconds, unit: 'msg/s', target: atLeast(1000) });
    figures.add({ section, name: '  primary CPU per reply (webhook)', value: ((cpuAfter.primary - cpuBefore.primary) * 1000) / MESSAGES, unit: 'ms' });
    figures.add({ section, name: '  worker CPU per reply (send, ticks)', value: ((cpuAfter.workers - cpuBefore.workers) * 1000) / MESSAGES, unit: 'ms' });
  } finally {
    await daemon?.stop();
    await double.close();
  }
}
