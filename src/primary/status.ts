/** Builds `GET /global-status` from the registry and the workers' snapshots, never by touching a socket. */
import type { GlobalStatus } from '../model/global-status.js';
import type { ControlPlane } from './control-plane.js';
import type { Supervisor } from './supervisor.js';

export async function buildGlobalStatus(control: ControlPlane, supervisor: Supervisor, version: string): Promise<GlobalStatus> {
  const now = Date.now();
  const list = await control.list();
  const instances = list.map((i) => {
    const s = i.status;
    return {
      instance: i.instanceKey,
      account: i.accountId,
      inbox: i.inboxId,
      desired: i.desired,
      state: i.desired === 'stopped' ? 'stopped' : (s?.state ?? 'starting'),
      phone: s?.phone ?? null,
      worker: i.slot ?? null,
      qrAttempts: s?.qrCount ?? 0,
      counters: { received: s?.inbound.received ?? 0, relayed: s?.inbound.relayed ?? 0, sent: s?.outbound.sent ?? 0, failed: s?.outbound.failed ?? 0, retried: s?.inbound.retried ?? 0, parked: s?.inbound.parked ?? 0 },
      queues: { inbound: s?.inbound.pending ?? 0, outbound: s?.outbound.pending ?? 0, held: s?.outbound.held ?? 0 },
      lastMessageAt: s?.lastMessageAtMs ? new Date(s.lastMessageAtMs).toISOString() : null,
      lastError: s?.lastDisconnect ?? null,
      import: s?.import ? { ...s.import } : null,
      contacts: s?.contacts ? { ...s.contacts } : null,
    };
  });
  const sum = (f: (i: (typeof instances)[number]) => number) => instances.reduce((a, i) => a + f(i), 0);
  return {
    primary: { pid: process.pid, uptimeS: Math.round(process.uptime()), version, cpuS: cpuSeconds() },
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
