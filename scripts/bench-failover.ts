/**
 * Fail-over figures for `npm run bench`: BENCH_FAILOVER_HOSTS (3) sandbox
 * daemons, each its own process group with its own HOST_ID and
 * MAX_WORKERS=1, on one Redis prefix with AUTH_STORE=redis, run
 * BENCH_FAILOVER_NUMBERS (100) numbers linked by QR through the sandbox
 * routes. Once the numbers are spread and each of the busiest host's numbers
 * has relayed one message (its chat known in Chatwoot), that host's process
 * group is SIGKILLed. Right after the kill each of its numbers gets a
 * customer's message, offered through the survivors again and again (the
 * same message id each time) until a host accepts it; the survivors'
 * `/global-status` is polled every 100 ms.
 *
 * Printed per INSTANCE_LEASE_TTL_MS in BENCH_FAILOVER_TTLS (15000 and 3000):
 * the numbers moved; the time from the kill until each is `open` on a
 * survivor (p50, and the max, which is when all are open); the time from
 * the kill until each number's message is in the Chatwoot double (p50,
 * max); QR codes shown for the moved numbers, and messages lost or doubled.
 * Target for both times: the TTL plus 5 s.
 *
 * Both survivors are polled, each answering for the numbers it runs itself:
 * a survivor sees the other's numbers through its heartbeat, up to a second
 * late. Each offer of the message is given up after 1 s: while the dead
 * host's placement lasts, a call for its number waits out the 10 s timeout
 * of a call between hosts, and a sender would not wait that long to retry.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';
import { BENCH_TOKEN, type BenchDaemon, deleteKeys, percentile, sleep, startBenchDaemon } from './bench-daemon.js';
import { atMost, type Figures } from './bench-figures.js';
import type { GlobalStatus } from '../src/model/global-status.js';

const HOSTS = Number(process.env.BENCH_FAILOVER_HOSTS ?? 3);
const NUMBERS = Number(process.env.BENCH_FAILOVER_NUMBERS ?? 100);
const TTLS_MS = (process.env.BENCH_FAILOVER_TTLS ?? '15000,3000').split(',').map(Number);
/** Numbers linked at once (each through the next host in turn). */
const LINK_PARALLEL = 10;
const POLL_MS = 100;
const OFFER_TIMEOUT_MS = 1000;
/** How long after the kill the run waits for the numbers and messages before it gives up, beyond the TTL. */
const GIVE_UP_AFTER_TTL_MS = 60_000;

/** What the run reads of `/global-status`. */
type Status = Pick<GlobalStatus, 'instances' | 'hosts'>;

interface Host {
  id: string;
  daemon: BenchDaemon;
}

const phoneOf = (i: number) => `55219${String(80_000_000 + i)}`;
const customerOf = (i: number) => `55119${String(70_000_000 + i)}`;
const seconds = (ms: number) => ms / 1000;

async function status(d: BenchDaemon): Promise<Status> {
  const { status: code, json } = await d.call('GET', '/global-status');
  if (code !== 200) throw new Error(`GET /global-status answered ${code}`);
  return json as unknown as Status;
}

/** One offer of a customer's message to the number `key` through `d`; true once a host took it. */
async function offer(d: BenchDaemon, key: string, body: unknown): Promise<boolean> {
  const res = await fetch(`${d.base}/sandbox/instances/${key}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(OFFER_TIMEOUT_MS),
  }).catch(() => undefined);
  await res?.body?.cancel();
  return res?.status === 201;
}

/** Polls `fn` every POLL_MS until it returns true; throws naming `what` (and what `seen` says) past `deadline` (performance.now()). */
async function waitFor(what: string, deadline: number, fn: () => Promise<boolean> | boolean, seen?: () => string): Promise<void> {
  while (!(await fn())) {
    if (performance.now() > deadline) throw new Error(`failover bench: still waiting for ${what}${seen ? ` (${seen()})` : ''}`);
    await sleep(POLL_MS);
  }
}

/** Hosts and their numbers, and the states of the numbers, in a line. */
function summary(s: Status | undefined): string {
  if (!s) return 'no status yet';
  const states = new Map<string, number>();
  for (const i of s.instances) states.set(i.state, (states.get(i.state) ?? 0) + 1);
  return `${s.hosts.map((h) => `${h.id}${h.alive ? '' : ' (down)'} ${h.instances}`).join(', ')}; ${[...states].map(([k, n]) => `${n} ${k}`).join(', ')}`;
}

async function startHosts(redisUrl: string, double: Parameters<typeof startBenchDaemon>[0]['double'], prefix: string, ttlMs: number): Promise<Host[]> {
  const authKey = randomBytes(32).toString('hex');
  const started = await Promise.allSettled(
    Array.from({ length: HOSTS }, async (_, n): Promise<Host> => {
      const id = `h${n + 1}`;
      const daemon = await startBenchDaemon({
        redisUrl,
        double,
        label: `failover-${id}`,
        sharedPrefix: prefix,
        detached: true,
        env: { HOST_ID: id, AUTH_STORE: 'redis', AUTH_STORE_KEY: authKey, MAX_WORKERS: '1', INSTANCE_LEASE_TTL_MS: String(ttlMs) },
      });
      return { id, daemon };
    }),
  );
  const hosts = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    for (const h of hosts) await h.daemon.kill();
    for (const h of hosts) await h.daemon.stop();
    throw failed.reason;
  }
  return hosts;
}

/** Links NUMBERS sandbox numbers, LINK_PARALLEL at a time, each through the next host; resolves with their keys. */
async function linkNumbers(hosts: Host[], accountId: number, inboxes: number[]): Promise<string[]> {
  const keys: string[] = new Array<string>(inboxes.length);
  for (let from = 0; from < inboxes.length; from += LINK_PARALLEL) {
    await Promise.all(
      inboxes.slice(from, from + LINK_PARALLEL).map(async (inbox, j) => {
        const i = from + j;
        keys[i] = await hosts[i % hosts.length]!.daemon.linkSandbox(accountId, inbox, phoneOf(i));
      }),
    );
  }
  return keys;
}

async function runOnce(redisUrl: string, ttlMs: number, figures: Figures): Promise<void> {
  /** When each message (by Chatwoot source id) first reached the double, and how many times. */
  const arrived = new Map<string, { atMs: number; count: number }>();
  const double = await startChatwootDouble({
    webhooksEnabled: false,
    onMessage: (m) => {
      if (!m.source_id) return;
      const seen = arrived.get(m.source_id);
      if (seen) seen.count += 1;
      else arrived.set(m.source_id, { atMs: performance.now(), count: 1 });
    },
  });
  const prefix = `ponte-bench:${process.pid}:failover-${ttlMs}:`;
  let hosts: Host[] = [];
  try {
    const setupStart = performance.now();
    hosts = await startHosts(redisUrl, double, prefix, ttlMs);
    const account = double.addAccount();
    const inboxes = Array.from({ length: NUMBERS }, (_, i) => double.addInbox({ accountId: account.id, name: `bench failover ${i}` }).id);
    const keys = await linkNumbers(hosts, account.id, inboxes);

    // Spread as placement spreads them: every number open, no host above its share (ceil(numbers / hosts)).
    let before: Status | undefined;
    await waitFor('the numbers to spread over the hosts', performance.now() + 60_000, async () => {
      before = await status(hosts[0]!.daemon);
      const loads = before.hosts.filter((h) => h.alive).map((h) => h.instances);
      return (
        loads.length === HOSTS &&
        before.instances.length === NUMBERS &&
        before.instances.every((i) => i.state === 'open' && i.host !== null) &&
        Math.max(...loads) <= Math.ceil(NUMBERS / HOSTS)
      );
    }, () => summary(before));
    const busiest = [...before!.hosts].sort((a, b) => b.instances - a.instances)[0]!;
    const victim = hosts.find((h) => h.id === busiest.id)!;
    const survivors = hosts.filter((h) => h !== victim);
    const survivorIds = new Set(survivors.map((h) => h.id));
    const moved = before!.instances.filter((i) => i.host === victim.id).map((i) => i.instance);
    const message = (key: string, id: string) => {
      const i = keys.indexOf(key);
      return { from: customerOf(i), pushName: `Cliente ${i}`, text: `mensagem ${id}`, id };
    };

    // Each moved number's chat is known in Chatwoot before the kill: the message after it measures the move, not a first contact.
    const warmIds = moved.map((key) => `FO${ttlMs}W${keys.indexOf(key)}`);
    await Promise.all(
      moved.map(async (key, n) => {
        if (!(await offer(survivors[n % survivors.length]!.daemon, key, message(key, warmIds[n]!)))) throw new Error(`failover bench: ${key} refused a message before the kill`);
      }),
    );
    await waitFor('the messages before the kill in Chatwoot', performance.now() + 30_000, () => warmIds.every((id) => arrived.has(`WAID:${id}`)));
    const setupS = seconds(performance.now() - setupStart);

    const t0 = performance.now();
    const killed = victim.daemon.kill('SIGKILL');
    const giveUpAt = t0 + ttlMs + GIVE_UP_AFTER_TTL_MS;

    const movedIds = moved.map((key) => `FO${ttlMs}M${keys.indexOf(key)}`);
    const acceptedMs = new Map<string, number>();
    const offering = Promise.all(
      moved.map(async (key, n) => {
        for (let attempt = n; ; attempt++) {
          if (await offer(survivors[attempt % survivors.length]!.daemon, key, message(key, movedIds[n]!))) {
            acceptedMs.set(key, performance.now() - t0);
            return;
          }
          if (performance.now() > giveUpAt) throw new Error(`failover bench: no host took a message for ${key} in ${seconds(giveUpAt - t0)} s`);
          await sleep(POLL_MS);
        }
      }),
    );

    const openMs = new Map<string, number>();
    await waitFor(`the ${moved.length} numbers of ${victim.id} to open on the survivors`, giveUpAt, async () => {
      const views = await Promise.all(survivors.map((h) => status(h.daemon).catch(() => undefined)));
      const at = performance.now() - t0;
      for (const [n, view] of views.entries()) {
        for (const i of view?.instances ?? []) {
          // A survivor answers live for its own numbers.
          if (i.host === survivors[n]!.id && i.state === 'open' && moved.includes(i.instance) && !openMs.has(i.instance)) openMs.set(i.instance, at);
        }
      }
      return openMs.size === moved.length;
    });
    await offering;
    await killed;
    await waitFor('the messages after the kill in Chatwoot', giveUpAt, () => movedIds.every((id) => arrived.has(`WAID:${id}`)));
    // Late duplicates would show within a moment.
    await sleep(1000);

    const after = await status(survivors[0]!.daemon);
    const landed = new Map(after.instances.map((i) => [i.instance, i]));
    const onSurvivors = moved.filter((k) => survivorIds.has(landed.get(k)?.host ?? ''));
    const qrs = moved.reduce((n, k) => n + (landed.get(k)?.qrAttempts ?? 0), 0);
    const delays = movedIds.map((id) => arrived.get(`WAID:${id}`)!.atMs - t0).sort((a, b) => a - b);
    const opens = [...openMs.values()].sort((a, b) => a - b);
    const accepts = [...acceptedMs.values()].sort((a, b) => a - b);
    const extra = [...warmIds, ...movedIds].reduce((n, id) => n + (arrived.get(`WAID:${id}`)?.count ?? 1) - 1, 0);
    const split = survivors.map((h) => `${h.id} ${moved.filter((k) => landed.get(k)?.host === h.id).length}`).join(', ');

    const ttlS = seconds(ttlMs);
    const target = atMost(ttlS + 5);
    console.log(
      `failover: ${HOSTS} hosts (MAX_WORKERS=1 each) on one Redis prefix, AUTH_STORE=redis, INSTANCE_LEASE_TTL_MS=${ttlMs}, ${NUMBERS} sandbox numbers linked by QR; set-up ${setupS.toFixed(0)} s`,
    );
    console.log(`  SIGKILL of ${victim.id}'s process group, which ran ${moved.length} numbers; they moved to ${split}; ${onSurvivors.length} of them on a survivor at the end`);
    console.log(`  first number open elsewhere ${seconds(opens[0] ?? 0).toFixed(1)} s after the kill (the others follow RESTORE_STAGGER_MS apart on each survivor)`);
    console.log(`  message offered at the kill, first taken by a host: p50 ${seconds(percentile(accepts, 50)).toFixed(1)} s, max ${seconds(accepts[accepts.length - 1] ?? 0).toFixed(1)} s`);
    const section = `failover, TTL ${ttlS} s`;
    figures.add({ section, name: `numbers moved (of ${NUMBERS}, ${HOSTS} hosts)`, value: moved.length, unit: 'numbers', digits: 0 });
    figures.add({ section, name: 'kill → number open elsewhere, p50', value: seconds(percentile(opens, 50)), unit: 's', digits: 1, target });
    figures.add({ section, name: 'kill → all open (max per number)', value: seconds(opens[opens.length - 1] ?? 0), unit: 's', digits: 1, target });
    figures.add({ section, name: 'kill → message in Chatwoot, p50', value: seconds(percentile(delays, 50)), unit: 's', digits: 1, target });
    figures.add({ section, name: 'kill → message in Chatwoot, max', value: seconds(delays[delays.length - 1] ?? 0), unit: 's', digits: 1, target });
    figures.add({ section, name: 'QR codes shown for the moved numbers', value: qrs, unit: 'codes', digits: 0, target: atMost(0) });
    figures.add({ section, name: 'messages doubled', value: extra, unit: 'messages', digits: 0, target: atMost(0) });
  } finally {
    // The survivors stop as an operator stops them (SIGTERM, each at once); the keys go after them.
    await Promise.all(hosts.map((h) => h.daemon.stop()));
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    await deleteKeys(redis, prefix);
    await redis.quit();
    await double.close();
  }
}

export async function benchFailover(redisUrl: string, figures: Figures): Promise<void> {
  for (const ttlMs of TTLS_MS) await runOnce(redisUrl, ttlMs, figures);
}
