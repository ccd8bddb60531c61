/** Prometheus metrics (prom-client) computed from the `/global-status` snapshot at each scrape. */
import { Counter, Gauge, Registry } from 'prom-client';
import type { GlobalStatus } from '../model/global-status.js';
import { SESSION_STATES } from '../model/session-state.js';

/** Every state an instance can show: its session's, `starting` before the first report, `host_down` while its host does not answer. */
const STATES = ['starting', 'host_down', ...SESSION_STATES] as const;

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
  new Counter({
    name: 'ponte_process_cpu_seconds_total',
    help: 'CPU time (user and system) of the primary and of each worker',
    labelNames: ['process'],
    registers: [registry],
    collect() {
      this.reset();
      if (current) this.inc({ process: 'primary' }, current.primary.cpuS);
      for (const w of current?.workers ?? []) if (w.cpuS !== null) this.inc({ process: `worker-${w.id}` }, w.cpuS);
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
  new Gauge({
    name: 'ponte_host_up',
    help: 'Hosts on this Redis prefix: 1 while it renews its heartbeat, 0 for one seen in the last day that stopped or stopped answering',
    labelNames: ['host'],
    registers: [registry],
    collect() {
      this.reset();
      for (const h of current?.hosts ?? []) this.set({ host: h.id }, h.alive ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ponte_host_instances',
    help: 'Instances each host runs',
    labelNames: ['host'],
    registers: [registry],
    collect() {
      this.reset();
      for (const h of current?.hosts ?? []) this.set({ host: h.id }, h.instances);
    },
  });
  new Gauge({
    name: 'ponte_outbound_held',
    help: 'Agent messages to customers who have not written in 24 h, waiting for the send limiter',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of current?.instances ?? []) this.set({ instance: i.instance }, i.queues.held);
    },
  });
  new Gauge({
    name: 'ponte_instance_restricted',
    help: "Whether WhatsApp restricts the number now, stopping proactive sends: 1 for the restriction on (reachout: its reach-out lock; cap: its new-chat cap)",
    labelNames: ['instance', 'kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of current?.instances ?? []) for (const kind of ['reachout', 'cap'] as const) this.set({ instance: i.instance, kind }, i.restricted?.kind === kind ? 1 : 0);
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
