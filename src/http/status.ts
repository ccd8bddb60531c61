import { Counter, Gauge, Registry } from 'prom-client';
import type { ControlPlane } from '../primary/control-plane.js';
import type { Supervisor } from '../primary/supervisor.js';

/** `GET /global-status`: built from snapshots the workers push, never by touching sockets. */
export interface GlobalStatus {
  primary: { pid: number; uptimeS: number; version: string };
  workers: Array<{ id: number; pid: number | null; ready: boolean; uptimeS: number | null; restarts: number; instances: number; memory: { rssBytes: number; heapUsedBytes: number } | null }>;
  totals: { instances: number; open: number; received: number; relayed: number; sent: number; failed: number; retried: number; parked: number; inboundQueue: number; outboundQueue: number };
  instances: Array<{
    instance: string;
    account: number;
    inbox: number;
    desired: 'running' | 'stopped';
    state: string;
    phone: string | null;
    worker: number | null;
    qrAttempts: number;
    counters: { received: number; relayed: number; sent: number; failed: number; retried: number; parked: number };
    queues: { inbound: number; outbound: number };
    lastMessageAt: string | null;
    lastError: string | null;
  }>;
}

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
      queues: { inbound: s?.inbound.pending ?? 0, outbound: s?.outbound.pending ?? 0 },
      lastMessageAt: s?.lastMessageAtMs ? new Date(s.lastMessageAtMs).toISOString() : null,
      lastError: s?.lastDisconnect ?? null,
    };
  });
  const sum = (f: (i: (typeof instances)[number]) => number) => instances.reduce((a, i) => a + f(i), 0);
  return {
    primary: { pid: process.pid, uptimeS: Math.round(process.uptime()), version },
    workers: supervisor.all().map((w) => ({
      id: w.slot,
      pid: w.pid ?? null,
      ready: w.ready,
      uptimeS: w.startedAtMs ? Math.round((now - w.startedAtMs) / 1000) : null,
      restarts: w.restarts,
      instances: w.instances.length,
      memory: w.memory ? { rssBytes: w.memory.rss, heapUsedBytes: w.memory.heapUsed } : null,
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
    },
    instances,
  };
}

const STATES = ['starting', 'stopped', 'waiting_lease', 'connecting', 'awaiting_scan', 'open', 'reconnecting', 'qr_expired', 'logged_out', 'halted'] as const;

/**
 * Prometheus metrics (prom-client), computed from the same snapshot at each
 * scrape: workers, per-instance state (one series per state, 1 for the
 * current one), counters and queue depths.
 */
export function createMetrics(snapshot: () => Promise<GlobalStatus>): { registry: Registry; scrape(): Promise<string> } {
  const registry = new Registry();
  let current: GlobalStatus | undefined;
  new Gauge({
    name: 'ponte_workers',
    help: 'Cluster workers, by readiness',
    labelNames: ['ready'],
    registers: [registry],
    collect() {
      this.reset();
      const ready = current!.workers.filter((w) => w.ready).length;
      this.set({ ready: 'true' }, ready);
      this.set({ ready: 'false' }, current!.workers.length - ready);
    },
  });
  new Counter({
    name: 'ponte_worker_restarts_total',
    help: 'Worker restarts after an unexpected exit',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of current?.workers ?? []) this.inc({ worker: String(w.id) }, w.restarts);
    },
  });
  new Gauge({
    name: 'ponte_worker_memory_bytes',
    help: 'Worker resident memory',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of current?.workers ?? []) if (w.memory) this.set({ worker: String(w.id) }, w.memory.rssBytes);
    },
  });
  new Gauge({
    name: 'ponte_instance_state',
    help: 'Instance state: 1 for the current state',
    labelNames: ['instance', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of current?.instances ?? []) for (const s of STATES) this.set({ instance: i.instance, state: s }, i.state === s ? 1 : 0);
    },
  });
  for (const [name, help, pick] of [
    ['ponte_messages_received_total', 'Messages received from WhatsApp', (i: GlobalStatus['instances'][number]) => i.counters.received],
    ['ponte_messages_relayed_total', 'Messages created in Chatwoot', (i: GlobalStatus['instances'][number]) => i.counters.relayed],
    ['ponte_messages_sent_total', 'Agent messages sent on WhatsApp', (i: GlobalStatus['instances'][number]) => i.counters.sent],
    ['ponte_messages_failed_total', 'Agent messages that failed on WhatsApp', (i: GlobalStatus['instances'][number]) => i.counters.failed],
    ['ponte_messages_retried_total', 'Delivery retries for a message-specific failure', (i: GlobalStatus['instances'][number]) => i.counters.retried],
    ['ponte_messages_parked_total', 'Messages that failed for good (replayable)', (i: GlobalStatus['instances'][number]) => i.counters.parked],
  ] as const) {
    new Counter({
      name,
      help,
      labelNames: ['instance'],
      registers: [registry],
      collect() {
        this.reset();
        for (const i of current?.instances ?? []) this.inc({ instance: i.instance }, pick(i));
      },
    });
  }
  new Gauge({
    name: 'ponte_queue_depth',
    help: 'Messages waiting, by direction',
    labelNames: ['instance', 'direction'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of current?.instances ?? []) {
        this.set({ instance: i.instance, direction: 'inbound' }, i.queues.inbound);
        this.set({ instance: i.instance, direction: 'outbound' }, i.queues.outbound);
      }
    },
  });
  return {
    registry,
    // One snapshot per scrape, read by every metric's collect.
    scrape: async () => {
      current = await snapshot();
      return registry.metrics();
    },
  };
}
