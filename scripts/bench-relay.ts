/**
 * Inbound figures for `npm run bench`, through the whole daemon: the
 * sandbox driver receives WhatsApp messages (bursts through the sandbox's
 * batch route), one worker relays them to the Chatwoot double on loopback.
 *
 * Three runs on one daemon and one instance, each on chats of its own (the
 * first message of each chat, which resolves the contact and conversation,
 * is sent and relayed before the clock starts):
 *   1. throughput: BENCH_MESSAGES messages over BENCH_CHATS chats as fast as
 *      they are taken; messages per second, the ratio to bare BullMQ in the
 *      same run, Chatwoot calls per message, CPU per message in the worker
 *      and in the primary (`process.cpuUsage`, read from /global-status),
 *      and what was lost, doubled or out of order;
 *   2. latency: a steady BENCH_STEADY_RATE messages per second, one per
 *      request as WhatsApp delivers them one by one; p50/p99 from the
 *      request to the double creating the message;
 *   3. the throughput run with BENCH_LATENCY_MS added to every Chatwoot
 *      answer, against the ideal CHATWOOT_QUEUE_CONCURRENCY / latency.
 */
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';
import { type BenchDaemon, daemonCpu, percentile, sleep, startBenchDaemon } from './bench-daemon.js';
import { atLeast, atMost, type Figures } from './bench-figures.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 5000);
const CHATS = Number(process.env.BENCH_CHATS ?? 50);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 10);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 25);
const STEADY_RATE = Number(process.env.BENCH_STEADY_RATE ?? 100);
const STEADY_SECONDS = Number(process.env.BENCH_STEADY_SECONDS ?? 15);
const BATCH = 100;

interface Sent {
  id: string;
  chat: number;
  seq: number;
}

/** The `i`th message after the warm-up of run `tag`, chats in turn: its id names the chat and the sequence in it, read back from the Chatwoot source id. */
function nth(tag: string, i: number): Sent {
  const chat = i % CHATS;
  const seq = 1 + Math.floor(i / CHATS);
  return { id: `${tag}C${chat}N${seq}`, chat, seq };
}
const phoneOf = (run: number, chat: number) => `55119${String(run * 1_000_000 + 40_000_000 + chat).padStart(8, '0')}`;

export async function benchRelay(redisUrl: string, bare: number, figures: Figures): Promise<void> {
  const created = new Map<string, number>();
  let waiting: { count: number; resolve: () => void } | undefined;
  const double = await startChatwootDouble({
    webhooksEnabled: false,
    // The double's own limit is Chatwoot's (200 a minute per conversation); a benchmark chat goes faster.
    messagesPerMinutePerConversation: 1_000_000,
    onMessage: (m) => {
      if (m.source_id && !created.has(m.source_id)) created.set(m.source_id, performance.now());
      if (waiting && created.size >= waiting.count) waiting.resolve();
    },
  });
  const relayedCount = (count: number) =>
    created.size >= count ? Promise.resolve() : new Promise<void>((resolve) => (waiting = { count, resolve }));
  let daemon: BenchDaemon | undefined;
  try {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id, name: 'bench relay' });
    daemon = await startBenchDaemon({ redisUrl, double, label: 'relay', env: { MAX_WORKERS: '1', CHATWOOT_QUEUE_CONCURRENCY: String(CONCURRENCY) } });
    const key = await daemon.linkSandbox(account.id, inbox.id, '5511900000003');
    const d = daemon;
    const post = async (body: unknown) => {
      const r = await d.call('POST', `/sandbox/instances/${key}/messages`, body);
      if (r.status !== 201) throw new Error(`the sandbox refused a message: ${r.status} ${JSON.stringify(r.json)}`);
    };
    const message = (run: number, s: Sent) => ({ from: phoneOf(run, s.chat), pushName: `Cliente ${s.chat}`, text: `mensagem ${s.seq}`, id: s.id });
    /** The first message of each chat of run `run`, relayed before any clock starts: from then on the chats are known. */
    const warm = async (run: number, tag: string): Promise<Sent[]> => {
      const first = Array.from({ length: CHATS }, (_, chat) => ({ id: `${tag}C${chat}N0`, chat, seq: 0 }));
      const before = created.size;
      await post({ messages: first.map((s) => message(run, s)) });
      await relayedCount(before + CHATS);
      return first;
    };

    /** One run of BENCH_MESSAGES messages over BENCH_CHATS known chats, sent in bursts; messages/s, CPU and what it checked. */
    const burstRun = async (run: number, tag: string) => {
      const first = await warm(run, tag);
      const before = created.size;
      const sent = Array.from({ length: MESSAGES }, (_, i) => nth(tag, i));
      double.calls.reset();
      const cpuBefore = await daemonCpu(d);
      const start = performance.now();
      for (let i = 0; i < sent.length; i += BATCH) await post({ messages: sent.slice(i, i + BATCH).map((s) => message(run, s)) });
      await relayedCount(before + MESSAGES);
      const seconds = (performance.now() - start) / 1000;
      const calls = double.calls.count();
      const cpuAfter = await daemonCpu(d);
      return {
        perSecond: MESSAGES / seconds,
        callsPerMessage: calls / MESSAGES,
        workerCpuMs: ((cpuAfter.workers - cpuBefore.workers) * 1000) / MESSAGES,
        primaryCpuMs: ((cpuAfter.primary - cpuBefore.primary) * 1000) / MESSAGES,
        ...check(tag, [...first, ...sent]),
      };
    };

    /** What reached the double for run `tag`, against what was sent: per chat, each id once and in order. */
    const check = (tag: string, sent: Sent[]) => {
      const seen = new Map<number, number[]>();
      let total = 0;
      for (const conv of double.conversations(account.id)) {
        for (const m of double.messages(account.id, conv.id)) {
          const match = /^WAID:(.+)C(\d+)N(\d+)$/.exec(m.source_id ?? '');
          if (!match || match[1] !== tag) continue;
          total += 1;
          const chat = Number(match[2]);
          seen.set(chat, [...(seen.get(chat) ?? []), Number(match[3])]);
        }
      }
      const unique = new Set(sent.map((s) => s.id)).size;
      let relayedUnique = 0;
      let outOfOrder = 0;
      for (const seqs of seen.values()) {
        relayedUnique += new Set(seqs).size;
        for (let i = 1; i < seqs.length; i++) if (seqs[i]! <= seqs[i - 1]!) outOfOrder += 1;
      }
      return { lost: unique - relayedUnique, doubled: total - relayedUnique, outOfOrder };
    };

    console.log(`relay through the daemon: ${MESSAGES} messages over ${CHATS} chats in bursts of ${BATCH}, one instance, CHATWOOT_QUEUE_CONCURRENCY ${CONCURRENCY}`);
    const fast = await burstRun(1, 'F');
    const section = 'inbound';
    figures.add({ section, name: 'relayed, end to end', value: fast.perSecond, unit: 'msg/s', target: atLeast(1000) });
    figures.add({ section, name: 'ratio to bare BullMQ (same run, same Redis)', value: fast.perSecond / bare, unit: '×', target: atLeast(0.35) });
    figures.add({ section, name: 'Chatwoot calls per message (chats known)', value: fast.callsPerMessage, unit: 'calls', target: atMost(1) });
    figures.add({ section, name: 'worker CPU per message', value: fast.workerCpuMs, unit: 'ms', target: atMost(0.5) });
    figures.add({ section, name: 'primary CPU per message', value: fast.primaryCpuMs, unit: 'ms', target: atMost(0.3) });
    figures.add({ section, name: 'lost, doubled or out of order', value: fast.lost + fast.doubled + fast.outOfOrder, unit: 'messages', target: atMost(0) });

    // A steady offered rate, one message per request (WhatsApp's usual delivery).
    const steadyCount = STEADY_RATE * STEADY_SECONDS;
    await warm(2, 'S');
    const beforeSteady = created.size;
    const sentAt = new Map<string, number>();
    const steadyStart = performance.now();
    const inFlight: Array<Promise<void>> = [];
    for (let i = 0; i < steadyCount; i++) {
      const due = steadyStart + (i * 1000) / STEADY_RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const s = nth('S', i);
      sentAt.set(`WAID:${s.id}`, performance.now());
      inFlight.push(post(message(2, s)));
    }
    await Promise.all(inFlight);
    await relayedCount(beforeSteady + steadyCount);
    const latencies = [...sentAt].map(([sourceId, t0]) => created.get(sourceId)! - t0).sort((a, b) => a - b);
    console.log(`steady ${STEADY_RATE} msg/s for ${STEADY_SECONDS} s, one message per request`);
    figures.add({ section, name: `latency at ${STEADY_RATE} msg/s, p50`, value: percentile(latencies, 50), unit: 'ms', digits: 1 });
    figures.add({ section, name: `latency at ${STEADY_RATE} msg/s, p99`, value: percentile(latencies, 99), unit: 'ms', digits: 1, target: atMost(20) });

    const remove = double.faults.slow(LATENCY_MS);
    const ideal = CONCURRENCY / (LATENCY_MS / 1000);
    console.log(`the throughput run again with ${LATENCY_MS} ms added to every Chatwoot answer (ideal ${ideal.toFixed(0)} msg/s)`);
    const slow = await burstRun(3, 'L');
    remove();
    figures.add({ section, name: `relayed with +${LATENCY_MS} ms Chatwoot latency`, value: slow.perSecond, unit: 'msg/s' });
    figures.add({ section, name: `  share of the ideal ${CONCURRENCY} / ${LATENCY_MS} ms`, value: (slow.perSecond / ideal) * 100, unit: '%', target: atLeast(80) });
    figures.add({ section, name: '  lost, doubled or out of order', value: slow.lost + slow.doubled + slow.outOfOrder, unit: 'messages', target: atMost(0) });
  } finally {
    await daemon?.stop();
    await double.close();
  }
}
