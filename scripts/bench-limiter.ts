/**
 * The safe-sending limiter's figure for `npm run bench`: the whole daemon
 * (sandbox driver) gets a burst of BENCH_LIMITER_CHATS agent-started
 * conversations (customers who never wrote) with SENDS_PER_MINUTE=600 and
 * NEW_CHAT_SENDS_PER_HOUR=6000, spaced 80–120 ms (about 600 a minute, so
 * 100 take some 10 s). Printed: the proactive sends per minute achieved
 * (first to last in the sandbox outbox) beside the configured rate, and the
 * time from an agent's reply in a customer-started conversation, written
 * during the burst, to its send on WhatsApp (target: not delayed).
 */
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';
import type { OutboxEntry } from '../src/sandbox/schemas.js';
import { BENCH_SECRET, type BenchDaemon, sleep, startBenchDaemon } from './bench-daemon.js';
import { atLeast, atMost, type Figures } from './bench-figures.js';

const CHATS = Number(process.env.BENCH_LIMITER_CHATS ?? 100);
const PER_MINUTE = 600;

export async function benchLimiter(redisUrl: string, figures: Figures): Promise<void> {
  const double = await startChatwootDouble();
  let daemon: BenchDaemon | undefined;
  try {
    const account = double.addAccount();
    daemon = await startBenchDaemon({
      redisUrl,
      double,
      label: 'limiter',
      env: { SENDS_PER_MINUTE: String(PER_MINUTE), NEW_CHAT_SENDS_PER_HOUR: String(PER_MINUTE * 10), SEND_SPACING_MIN_MS: '80', SEND_SPACING_MAX_MS: '120' },
    });
    const d = daemon;
    const inbox = double.addInbox({ accountId: account.id, name: 'bench limiter' });
    const key = `${account.id}-${inbox.id}`;
    double.setInboxWebhook(inbox.id, `${d.base}/webhook/chatwoot/${key}?token=${BENCH_SECRET}`);
    await d.linkSandbox(account.id, inbox.id, '5511900000009');
    const cw = async <T>(path: string, body: unknown): Promise<T> =>
      (await (
        await fetch(`${double.url}/api/v1/accounts/${account.id}/${path}`, {
          method: 'POST',
          headers: { api_access_token: double.token, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).json()) as T;
    const outbox = async () => ((await d.call('GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[] | undefined) ?? [];

    // The customer-started conversation: its customer writes first.
    await d.call('POST', `/sandbox/instances/${key}/messages`, { from: '5511930000001', pushName: 'Cliente', text: 'Oi', id: 'BENCHLIMIN1' });
    let customerConv: number | undefined;
    while (!(customerConv = double.conversations(account.id).find((c) => double.messages(account.id, c.id).some((m) => m.source_id === 'WAID:BENCHLIMIN1'))?.id)) await sleep(20);

    const conversations: number[] = [];
    for (let c = 0; c < CHATS; c++) {
      const jid = `55119${String(40_000_000 + c)}@s.whatsapp.net`;
      const contact = await cw<{ payload: { contact: { id: number } } }>('contacts', { inbox_id: inbox.id, name: `Novo ${c}`, phone_number: `+${jid.split('@')[0]}`, source_id: jid });
      conversations.push((await cw<{ id: number }>('conversations', { source_id: jid, inbox_id: inbox.id, contact_id: contact.payload.contact.id })).id);
    }
    for (const [c, conv] of conversations.entries()) double.createAgentMessage(account.id, conv, { content: `campanha ${c}` });

    // Mid-burst, an agent answers the customer who wrote.
    while ((await outbox()).filter((e) => e.text?.startsWith('campanha')).length < Math.min(20, CHATS / 2)) await sleep(50);
    const t0 = Date.now();
    double.createAgentMessage(account.id, customerConv, { content: 'resposta ao cliente' });
    let reply: OutboxEntry | undefined;
    while (!(reply = (await outbox()).find((e) => e.text === 'resposta ao cliente'))) await sleep(10);
    const replyMs = reply.atMs - t0;
    const heldDuring = (await d.call('GET', '/global-status')).json.totals as { outboundHeld?: number };

    let sent: OutboxEntry[] = [];
    while ((sent = (await outbox()).filter((e) => e.text?.startsWith('campanha'))).length < CHATS) await sleep(100);
    const span = sent[sent.length - 1]!.atMs - sent[0]!.atMs;
    const perMinute = ((sent.length - 1) * 60_000) / span;
    console.log(`limiter: ${CHATS} agent-started conversations at SENDS_PER_MINUTE=${PER_MINUTE} (spacing 80–120 ms); ${heldDuring.outboundHeld ?? 0} held when the reply went`);
    const section = 'limiter';
    figures.add({ section, name: `proactive sends/min (configured ${PER_MINUTE})`, value: perMinute, unit: '/min', target: atMost(PER_MINUTE) });
    figures.add({ section, name: '  share of the configured rate', value: (perMinute / PER_MINUTE) * 100, unit: '%', digits: 0, target: atLeast(80) });
    figures.add({ section, name: 'customer-started reply during the burst', value: replyMs, unit: 'ms', target: atMost(500) });
  } finally {
    await daemon?.stop();
    await double.close();
  }
}
