/** Builds `GET /global-status` from the registry and the workers' snapshots, never by touching a socket. */
import type { GlobalStatus } from '../model/global-status.js';
import type { ControlPlane } from './control-plane.js';
import type { HostDirectory } from './hosts.js';
import type { Supervisor } from './supervisor.js';

/**
 * Every instance of the prefix, whichever host runs it (its status from its
 * host's heartbeat when another host runs it), every host with its health,
 * and this host's own workers.
 */
export async function buildGlobalStatus(
  control: Pick<ControlPlane, 'list'>,
  supervisor: Pick<Supervisor, 'count' | 'all'>,
  hosts: Pick<HostDirectory, 'all' | 'hostId'>,
  version: string,
): Promise<GlobalStatus> {
  const now = Date.now();
  // One read of the heartbeats serves both the hosts and the instances other hosts run.
  const entries = await hosts.all();
  const list = await control.list(entries.flatMap((h) => (h.beat ? [h.beat] : [])));
  // A host that stopped beating (killed, frozen) still has a heartbeat until its TTL ends; its numbers are not served meanwhile.
  const silent = new Map(entries.filter((h) => h.alive && !h.answering && h.hostId !== hosts.hostId).map((h) => [h.hostId, h.lastSeenAtMs]));
  const instances = list.map((i) => {
    const s = i.status;
    const hostSilentSince = i.host === undefined ? undefined : silent.get(i.host);
    const lastError = hostSilentSince === undefined ? (s?.lastDisconnect ?? null) : `host ${i.host} has not answered since ${new Date(hostSilentSince).toISOString()}; another host opens the number when its lease expires`;
    return {
      instance: i.instanceKey,
      account: i.accountId,
      inbox: i.inboxId,
      desired: i.desired,
      state: i.desired === 'stopped' ? 'stopped' : hostSilentSince !== undefined ? 'host_down' : (s?.state ?? 'starting'),
      phone: s?.phone ?? null,
      host: i.host ?? null,
      worker: i.slot ?? null,
      qrAttempts: s?.qrCount ?? 0,
      counters: { received: s?.inbound.received ?? 0, relayed: s?.inbound.relayed ?? 0, sent: s?.outbound.sent ?? 0, failed: s?.outbound.failed ?? 0, retried: s?.inbound.retried ?? 0, parked: s?.inbound.parked ?? 0 },
      queues: { inbound: s?.inbound.pending ?? 0, outbound: s?.outbound.pending ?? 0, held: s?.outbound.held ?? 0 },
      restricted: s?.outbound.restricted ? { kind: s.outbound.restricted.kind, until: new Date(s.outbound.restricted.untilMs).toISOString() } : null,
      lastMessageAt: s?.lastMessageAtMs ? new Date(s.lastMessageAtMs).toISOString() : null,
      lastError,
      import: s?.import ? { ...s.import } : null,
      contacts: s?.contacts ? { ...s.contacts } : null,
    };
  });
  const sum = (f: (i: (typeof instances)[number]) => number) => instances.reduce((a, i) => a + f(i), 0);
  const hostList = entries.map((h) => {
    const b = h.beat;
    const mine = instances.filter((i) => i.host === h.hostId);
    return {
      id: h.hostId,
      self: h.hostId === hosts.hostId,
      alive: h.answering || h.hostId === hosts.hostId,
      draining: b?.draining ?? false,
      pid: b?.pid ?? null,
      version: b?.version ?? null,
      uptimeS: b ? Math.round((now - b.startedAtMs) / 1000) : null,
      lastSeenAt: new Date(h.lastSeenAtMs).toISOString(),
      authStore: b?.authStore ?? null,
      // This host's own figures are read now, not from its last heartbeat.
      workers: h.hostId === hosts.hostId ? { total: supervisor.count, ready: supervisor.all().filter((w) => w.ready).length } : b ? { ...b.workers } : null,
      instances: mine.length,
      open: mine.filter((i) => i.state === 'open').length,
    };
  });
  return {
    primary: { host: hosts.hostId, pid: process.pid, uptimeS: Math.round(process.uptime()), version, cpuS: cpuSeconds() },
    hosts: hostList,
    workers: supervisor.all().map((w) => ({
      id: w.slot,
      pid: w.pid ?? null,
      ready: w.ready,
      uptimeS: w.startedAtMs ? Math.round((now - w.startedAtMs) / 1000) : null,
      restarts: w.restarts,
      instances: w.instances.length,
      memory: w.memory ? { rssBytes: w.memory.rss, heapUsedBytes: w.memory.heapUsed } : null,
      cpuS: w.cpuUs === undefined ? null : w.cpuUs / 1e6,
    })),
    totals: {
      instances: instances.length,
      open: instances.filter((i) => i.state === 'open').length,
      received: sum((i) => i.counters.received),
      relayed: sum((i) => i.counters.relayed),
      sent: sum((i) => i.counters.sent),
      failed: sum((i) => i.counters.failed),
      retried: sum((i) => i.counters.retried),
      parked: sum((i) => i.counters.parked),
      inboundQueue: sum((i) => i.queues.inbound),
      outboundQueue: sum((i) => i.queues.outbound),
      outboundHeld: sum((i) => i.queues.held),
    },
    instances,
  };
}

function cpuSeconds(): number {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1e6;
}
