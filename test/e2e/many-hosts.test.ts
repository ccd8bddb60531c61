/**
 * Three hosts on one Redis prefix (different ports, separate session
 * folders, `AUTH_STORE=redis`) running 30 sandbox numbers as one service:
 * the numbers spread over the hosts; messages come in through every host's
 * HTTP surface; a host SIGKILLed loses its numbers to the others without a
 * QR and nothing is lost or doubled; restarted, it takes its share back one
 * number at a time with never two sockets of a number open at once; a host
 * SIGSTOPped past its lease, once SIGCONTed, closes its stale sockets before
 * anything else and sends nothing on them. The simulated WhatsApp's
 * connection log (`GET /sandbox/instances/:instance/sockets`) is the witness.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { api, type Daemon, killDaemon, startDaemon, stopDaemon, until } from '../support/daemon.js';
import { daemonEnv, scanSandbox, SECRET, tearDown, tempDir, VERBOSE } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';
import type { GlobalStatus } from '../../src/model/global-status.js';
import type { OutboxEntry, SocketLogEntry } from '../../src/sandbox/schemas.js';

const NUMBERS = 30;
const TTL_MS = 3000;

describe('many hosts, one Redis', () => {
  let double: ChatwootDouble;
  const prefix = randomPrefix();
  const dirs: string[] = [];
  const hosts = new Map<string, Daemon>();
  let accountId: number;
  const keys: string[] = [];
  const inboxes: number[] = [];
  /** The ids each number's customer sent, in order. */
  const sent = new Map<string, string[]>();
  const customer = (i: number) => `55119${String(70000000 + i)}`;

  const start = async (hostId: string): Promise<Daemon> => {
    const sessions = await tempDir(`ponte-e2e-hosts-${hostId}-`);
    dirs.push(sessions);
    const d = await startDaemon(
      daemonEnv(
        { double, sessions, prefix },
        {
          HOST_ID: hostId,
          AUTH_STORE: 'redis',
          MAX_WORKERS: '1',
          INSTANCE_LEASE_TTL_MS: String(TTL_MS),
          HOST_REBALANCE_SPACING_MS: '300',
          RESTORE_STAGGER_MS: '20',
          BULLMQ_STALLED_INTERVAL_MS: '2000',
          BULLMQ_LOCK_DURATION_MS: '4000',
          SERVER_LOG_LEVEL: VERBOSE ? 'debug' : 'error',
        },
      ),
      { detached: true },
    );
    hosts.set(hostId, d);
    return d;
  };
  const host = (id: string): Daemon => hosts.get(id)!;
  const signal = (d: Daemon, s: NodeJS.Signals) => process.kill(-d.proc.pid!, s);
  const status = async (d: Daemon) => {
    const { json } = await api(d, 'GET', '/global-status');
    return json as unknown as Pick<GlobalStatus, 'instances' | 'hosts'>;
  };
  const sockets = async (d: Daemon, key: string) => (await api(d, 'GET', `/sandbox/instances/${key}/sockets`)).json.events as SocketLogEntry[];
  const outbox = async (d: Daemon, key: string) => (await api(d, 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[];

  /** A customer's message through host `via`, again until a host accepts it (the number may be moving); the same id each time. */
  async function inject(via: () => Daemon, i: number, id: string): Promise<void> {
    await until(`message ${id} accepted`, async () => {
      const r = await api(via(), 'POST', `/sandbox/instances/${keys[i]}/messages`, { from: customer(i), pushName: `Cliente ${i}`, text: `mensagem ${id}`, id }).catch(() => ({ status: 0 }));
      if (r.status === 201) return true;
      await new Promise((res) => setTimeout(res, 100));
      return undefined;
    });
    sent.get(keys[i]!)!.push(id);
  }

  /** One round: a message from every number's customer, each number's in order, the numbers in parallel. */
  const round = (tag: string, via: (i: number) => Daemon) => Promise.all(keys.map((_, i) => inject(() => via(i), i, `${tag}N${i}`)));

  /** Every message sent so far is in Chatwoot once, each number's in the order sent. */
  async function allArrived(): Promise<void> {
    const expected = [...sent.values()].reduce((n, ids) => n + ids.length, 0);
    const relayed = () => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id).filter((m) => m.message_type === 'incoming'));
    await until(`${expected} messages in Chatwoot`, () => Promise.resolve(relayed().length >= expected || undefined), undefined, 120_000);
    const all = relayed();
    expect(all).toHaveLength(expected);
    expect(new Set(all.map((m) => m.source_id)).size).toBe(expected);
    for (const [key, ids] of sent) {
      const i = keys.indexOf(key);
      const conv = double.conversations(accountId).find((c) => c.inbox_id === inboxes[i]);
      const got = double
        .messages(accountId, conv!.id)
        .filter((m) => m.message_type === 'incoming')
        .sort((a, b) => a.id - b.id)
        .map((m) => m.source_id);
      expect(got).toEqual(ids.map((id) => `WAID:${id}`));
    }
  }

  /** Waits until every number is open on one of `on`, and returns where each runs. */
  async function settledOn(on: string[], via: Daemon): Promise<Map<string, string>> {
    return until(
      `every number open on ${on.join(', ')}`,
      async () => {
        const { instances } = await status(via);
        const ok = instances.length === NUMBERS && instances.every((i) => i.state === 'open' && i.host !== null && on.includes(i.host));
        return ok ? new Map(instances.map((i) => [i.instance, i.host!])) : undefined;
      },
      via,
      120_000,
    );
  }

  /**
   * Checks a connection log: a socket opens only while no other socket of
   * the number is open. The sockets of a process killed at log position
   * `at` count as closed from there.
   */
  function neverTwoOpen(log: SocketLogEntry[], deaths: Array<{ at: number; pids: ReadonlySet<number> }> = [], from = 0): void {
    const id = (e: SocketLogEntry) => `${e.host}/${e.pid}/${e.socket}`;
    // Checked from `from` on: the sockets open there, those of dead processes left out, are the start.
    const open = new Map(openAt(log.slice(0, from)).filter((e) => !deaths.some((d) => d.at <= from && d.pids.has(e.pid))).map((e) => [id(e), e]));
    log.forEach((e, n) => {
      if (n < from) return;
      for (const d of deaths) if (n >= d.at) for (const [k, o] of open) if (d.pids.has(o.pid)) open.delete(k);
      if (e.event === 'open') {
        expect([...open.keys()], `${id(e)} opened while another socket of the number was open`).toEqual([]);
        open.set(id(e), e);
      } else if (e.event === 'close') open.delete(id(e));
    });
  }

  /** The sockets open at the end of `log`. */
  function openAt(log: SocketLogEntry[]): SocketLogEntry[] {
    const open = new Map<string, SocketLogEntry>();
    for (const e of log) {
      const id = `${e.host}/${e.pid}/${e.socket}`;
      if (e.event === 'open') open.set(id, e);
      else if (e.event === 'close') open.delete(id);
    }
    return [...open.values()];
  }

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    await Promise.all(['h1', 'h2', 'h3'].map((h) => start(h)));
  }, 120_000);

  afterAll(async () => {
    for (const d of hosts.values()) {
      try {
        signal(d, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    await tearDown({ daemons: [...hosts.values()], close: [double], prefix });
    for (const dir of dirs) await tearDown({ dir });
  }, 120_000);

  it('spreads 30 numbers over three hosts and takes messages through every host', async () => {
    const ids = ['h1', 'h2', 'h3'];
    for (let i = 0; i < NUMBERS; i++) {
      const via = host(ids[i % 3]!);
      const inbox = double.addInbox({ accountId, name: `WhatsApp ${i}` }).id;
      inboxes.push(inbox);
      const key = `${accountId}-${inbox}`;
      keys.push(key);
      sent.set(key, []);
      double.setInboxWebhook(inbox, `${host(ids[(i + 2) % 3]!).base}/webhook/chatwoot/${key}?token=${SECRET}`);
      expect((await api(via, 'POST', '/admin/instances', { inbox, account: accountId })).status).toBe(201);
      if (i < 3) {
        // The QR comes from the host that runs the number, through any host: the same one from all three.
        await until(`a QR for ${key}`, async () => (await api(via, 'GET', `/admin/instances/${key}/qr?format=text`)).status === 200 || undefined);
        const qrs = await Promise.all(ids.map(async (h) => (await api(host(h), 'GET', `/admin/instances/${key}/qr?format=text`)).json.qr));
        expect(typeof qrs[0]).toBe('string');
        expect(new Set(qrs).size).toBe(1);
      }
      // Scanned through another host than the one that created it.
      await scanSandbox(host(ids[(i + 1) % 3]!), key, `55219${String(80000000 + i)}`);
    }
    const placed = await settledOn(ids, host('h1'));
    await until('ten numbers on each host', async () => {
      const { hosts: list } = await status(host('h2'));
      return list.filter((h) => h.alive).every((h) => h.instances === 10) && list.length === 3 ? true : undefined;
    });
    expect(new Set(placed.values()).size).toBe(3);
    for (let r = 0; r < 3; r++) await round(`A${r}`, (i) => host(ids[(i + r) % 3]!));
    await allArrived();
  }, 300_000);

  /** Where each number's log stood when h1 was killed, and h1's processes then. */
  const killIndex = new Map<string, number>();
  let h1Pids: ReadonlySet<number> = new Set();

  it('a host SIGKILLed: its numbers open on the others without a QR, every message once and in order', async () => {
    const before = await settledOn(['h1', 'h2', 'h3'], host('h2'));
    const victims = keys.filter((k) => before.get(k) === 'h1');
    expect(victims.length).toBeGreaterThan(0);
    const survivors = ['h2', 'h3'];
    await round('B0', (i) => host(survivors[i % 2]!));
    // Its worker's pid is in the connection log; the whole process group dies.
    h1Pids = new Set((await Promise.all(keys.map((k) => sockets(host('h2'), k)))).flat().filter((e) => e.host === 'h1').map((e) => e.pid));
    const streaming = (async () => {
      for (let r = 1; r < 4; r++) await round(`B${r}`, (i) => host(survivors[(i + r) % 2]!));
    })();
    await killDaemon(host('h1'));
    for (const k of keys) killIndex.set(k, (await sockets(host('h2'), k)).length);
    await streaming;
    const after = await settledOn(survivors, host('h3'));
    for (const k of victims) expect(survivors).toContain(after.get(k));
    const { instances } = await status(host('h3'));
    expect(instances.every((i) => i.qrAttempts === 0)).toBe(true);
    await allArrived();
    for (const k of keys) neverTwoOpen(await sockets(host('h2'), k), [{ at: killIndex.get(k)!, pids: h1Pids }]);
  }, 300_000);

  it('the host restarts and takes its share back, one number at a time, never two sockets of a number at once', async () => {
    const h1 = await start('h1');
    await until(
      'h1 running its share again',
      async () => {
        const { hosts: list } = await status(h1);
        return list.filter((h) => h.alive).every((h) => h.instances === 10) ? true : undefined;
      },
      h1,
      120_000,
    );
    await settledOn(['h1', 'h2', 'h3'], h1);
    for (const k of keys) neverTwoOpen(await sockets(h1, k), [{ at: killIndex.get(k)!, pids: h1Pids }]);
    await round('C0', (i) => host(['h1', 'h2', 'h3'][i % 3]!));
    await allArrived();
  }, 300_000);

  it('a host SIGSTOPped past its lease, once SIGCONTed, closes its old sockets first and sends nothing on them', async () => {
    const before = await settledOn(['h1', 'h2', 'h3'], host('h1'));
    const paused = host('h2');
    const victims = keys.filter((k) => before.get(k) === 'h2');
    expect(victims.length).toBeGreaterThan(0);
    // Agent replies go through h3 from now on.
    for (const k of victims) double.setInboxWebhook(inboxes[keys.indexOf(k)]!, `${host('h3').base}/webhook/chatwoot/${k}?token=${SECRET}`);
    signal(paused, 'SIGSTOP');
    await settledOn(['h1', 'h3'], host('h1'));
    // While it sleeps: customers write, agents answer, on the numbers it had.
    await round('D0', (i) => host(['h1', 'h3'][i % 2]!));
    const replies: Array<{ key: string; conv: number; id: number; text: string }> = [];
    for (const k of victims) {
      const conv = double.conversations(accountId).find((c) => c.inbox_id === inboxes[keys.indexOf(k)])!.id;
      const text = `Resposta para ${k}`;
      replies.push({ key: k, conv, id: double.createAgentMessage(accountId, conv, { content: text }).id, text });
    }
    for (const r of replies) await until(`reply on ${r.key} sent`, async () => ((await outbox(host('h1'), r.key)).some((e) => e.text === r.text) ? true : undefined));
    const wake = new Map<string, number>();
    for (const k of victims) wake.set(k, (await sockets(host('h1'), k)).length);

    // The woken host's sockets still open in the simulated WhatsApp's eyes: it was frozen, not closed.
    const stale = new Map<string, Set<number>>();
    for (const k of victims) stale.set(k, new Set(openAt((await sockets(host('h1'), k)).slice(0, wake.get(k))).filter((e) => e.host === 'h2').map((e) => e.socket)));
    expect([...stale.values()].some((set) => set.size > 0)).toBe(true);
    // The frozen socket and its successor overlap in the log: the check above would see it.
    const overlapped = victims.find((k) => stale.get(k)!.size > 0)!;
    const overlapLog = await sockets(host('h1'), overlapped);
    expect(() => neverTwoOpen(overlapLog)).toThrow(/opened while another socket/);

    signal(paused, 'SIGCONT');
    const closedAll = async () => {
      for (const k of victims) {
        const log = (await sockets(host('h1'), k)).slice(wake.get(k));
        const closed = new Set(log.filter((e) => e.host === 'h2' && e.event === 'close').map((e) => e.socket));
        if (![...stale.get(k)!].every((s) => closed.has(s))) return undefined;
      }
      return true;
    };
    await until('the woken host closed its stale sockets', closedAll, paused, 60_000);
    for (const k of victims) {
      const log = (await sockets(host('h1'), k)).slice(wake.get(k));
      const lastClose = Math.max(...[...stale.get(k)!].map((s) => log.findIndex((e) => e.host === 'h2' && e.event === 'close' && e.socket === s)));
      // Before it gave the number up, the woken host did nothing else with it; on a stale socket it never sent.
      expect(log.slice(0, lastClose + 1).filter((e) => e.host === 'h2' && !(e.event === 'close' && stale.get(k)!.has(e.socket)))).toEqual([]);
      expect(log.filter((e) => e.host === 'h2' && stale.get(k)!.has(e.socket) && e.event === 'send')).toEqual([]);
    }
    await settledOn(['h1', 'h2', 'h3'], host('h1'));
    await round('D1', (i) => host(['h1', 'h2', 'h3'][i % 3]!));
    await allArrived();
    for (const r of replies) {
      expect((await outbox(host('h3'), r.key)).filter((e) => e.text === r.text)).toHaveLength(1);
      expect(double.messages(accountId, r.conv).find((m) => m.id === r.id)?.status).not.toBe('failed');
    }
  }, 300_000);

  it('SIGTERM: a host hands its numbers over before it exits, its sockets closed, nothing lost', async () => {
    const before = await settledOn(['h1', 'h2', 'h3'], host('h1'));
    for (const [id, d] of hosts) expect(d.proc.exitCode, `${id} exited: ${d.output.join('').slice(-3000)}`).toBeNull();
    const leaving = keys.filter((k) => before.get(k) === 'h3');
    expect(leaving.length, JSON.stringify([...before])).toBeGreaterThan(0);
    const from = new Map<string, number>();
    for (const k of keys) from.set(k, (await sockets(host('h1'), k)).length);
    const streaming = round('E0', (i) => host(['h1', 'h2'][i % 2]!));
    expect(await stopDaemon(host('h3'))).toBe(0);
    // Gone, and every socket it had closed: a hand-over, not a crash the others wait out.
    const { hosts: list } = await status(host('h1'));
    expect(list.find((h) => h.id === 'h3')).toMatchObject({ alive: false });
    for (const k of leaving) expect(openAt(await sockets(host('h1'), k)).filter((e) => e.host === 'h3')).toEqual([]);
    await streaming;
    const after = await settledOn(['h1', 'h2'], host('h2'));
    for (const k of leaving) expect(['h1', 'h2']).toContain(after.get(k));
    await allArrived();
    for (const k of keys) neverTwoOpen(await sockets(host('h1'), k), [{ at: killIndex.get(k)!, pids: h1Pids }], from.get(k));
  }, 300_000);
});
