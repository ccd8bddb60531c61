/** Forks the cluster workers, keeps them alive and routes IPC between them and the primary. */
import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import type { InstanceStatus } from '../model/instance.js';
import { ControlError, type PrimaryToWorker, type WorkerEvent, type WorkerOp, type WorkerToPrimary } from '../cluster/ipc.js';
import { backoffDelayMs } from '../lib/backoff.js';
import type { Logger } from '../observability/logger.js';

export interface SlotState {
  slot: number;
  pid: number | undefined;
  ready: boolean;
  restarts: number;
  startedAtMs: number | undefined;
  instances: InstanceStatus[];
  memory: { rss: number; heapUsed: number } | undefined;
  /** CPU time the worker process has used (user and system), as of its last status report. */
  cpuUs: number | undefined;
  statusAtMs: number | undefined;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  slot: number;
}

export interface SupervisorEvents {
  ready: [slot: number];
  exit: [slot: number];
  event: [message: WorkerEvent];
}

/**
 * Forks one `node:cluster` worker per slot and keeps it alive: a worker that
 * exits outside shutdown is forked again for the same slot after a backoff
 * (reset once a worker has lived a minute). Routes IPC: control requests
 * with their answers, status reports, instance events.
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  private readonly slots: SlotState[];
  private readonly workers = new Map<number, Worker>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stopping = false;

  constructor(
    private readonly options: { count: number; env: Record<string, string>; log: Logger; requestTimeoutMs?: number },
  ) {
    super();
    this.slots = Array.from({ length: options.count }, (_, slot) => ({ slot, pid: undefined, ready: false, restarts: 0, startedAtMs: undefined, instances: [], memory: undefined, cpuUs: undefined, statusAtMs: undefined }));
  }

  get count(): number {
    return this.slots.length;
  }

  state(slot: number): SlotState {
    return this.slots[slot]!;
  }

  all(): readonly SlotState[] {
    return this.slots;
  }

  start(): void {
    for (const s of this.slots) this.fork(s.slot);
  }

  private fork(slot: number): void {
    const worker = cluster.fork({ ...this.options.env, PONTE_WORKER_SLOT: String(slot) });
    const state = this.slots[slot]!;
    state.pid = worker.process.pid;
    state.ready = false;
    state.startedAtMs = Date.now();
    this.workers.set(slot, worker);
    worker.on('message', (msg: WorkerToPrimary) => this.onMessage(slot, msg));
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
  }

  private onMessage(slot: number, msg: WorkerToPrimary): void {
    const state = this.slots[slot]!;
    switch (msg.type) {
      case 'ready':
        state.ready = true;
        this.options.log.info({ slot, pid: state.pid }, 'worker ready');
        this.emit('ready', slot);
        return;
      case 'status':
        state.instances = msg.instances;
        state.memory = msg.memory;
        state.cpuUs = msg.cpuUs;
        state.statusAtMs = Date.now();
        return;
      case 'event':
        this.emit('event', msg);
        return;
      case 'response': {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.ok) p.resolve(msg.result);
        else p.reject(new ControlError(msg.error.code, msg.error.message));
        return;
      }
    }
  }

  private onExit(slot: number, worker: Worker, code: number | null, signal: string | null): void {
    if (this.workers.get(slot) !== worker) return;
    const state = this.slots[slot]!;
    state.ready = false;
    state.instances = [];
    this.workers.delete(slot);
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new ControlError('worker_gone', `worker ${slot} exited before answering`));
    }
    this.emit('exit', slot);
    if (this.stopping) return;
    const lived = Date.now() - (state.startedAtMs ?? 0);
    if (lived > 60_000) state.restarts = 0;
    state.restarts += 1;
    const delay = backoffDelayMs(state.restarts, 250, 30_000);
    this.options.log.error({ slot, pid: state.pid, code, signal, restartInMs: delay }, 'worker exited: restarting it');
    setTimeout(() => {
      if (!this.stopping) this.fork(slot);
    }, delay).unref();
  }

  send(slot: number, msg: PrimaryToWorker): boolean {
    const worker = this.workers.get(slot);
    if (!worker || !worker.isConnected()) return false;
    worker.send(msg);
    return true;
  }

  /** A control call to a worker; `timeoutMs` overrides the usual deadline for an operation known to take longer. */
  request(slot: number, op: WorkerOp, instanceKey: string, args?: unknown, timeoutMs?: number): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.slots[slot]?.ready) return reject(new ControlError('worker_unavailable', `the worker of ${instanceKey} is restarting; try again in a moment`));
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ControlError('timeout', `worker ${slot} did not answer ${op}`));
      }, timeoutMs ?? this.options.requestTimeoutMs ?? 10_000);
      this.pending.set(id, { resolve, reject, timer, slot });
      if (!this.send(slot, { type: 'request', id, op, instanceKey, args })) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new ControlError('worker_unavailable', `worker ${slot} is not connected`));
      }
    });
  }

  /** Asks every worker to stop and waits for them (or the deadline). */
  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true;
    const exits = [...this.workers.values()].map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))));
    for (const [slot] of this.workers) this.send(slot, { type: 'shutdown' });
    const timer = new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref());
    await Promise.race([Promise.all(exits), timer]);
    for (const w of this.workers.values()) if (!w.isDead()) w.process.kill('SIGKILL');
  }
}
