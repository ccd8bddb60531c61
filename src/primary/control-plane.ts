import type { Redis } from 'ioredis';
import { ControlError, type InstanceStatus, type WorkerOp } from '../cluster/ipc.js';
import type { InstanceRecord, InstanceRegistry } from '../instances/registry.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../queue/keys.js';
import type { OutboxEntry } from '../whatsapp/sandbox/sandbox-socket.js';
import type { Supervisor } from './supervisor.js';

/**
 * The primary's view of instances: the registry (desired state, in Redis),
 * the assignment of each running instance to one worker slot, and what the
 * workers last reported.
 *
 * Assignment is sticky and balanced: a new instance goes to the slot with
 * the fewest instances, and nothing else moves; a worker that dies is forked
 * again for the same slot and gets the same instances back.
 */
export class ControlPlane {
  private readonly assignment = new Map<string, number>();
  /** The QR an instance currently shows, from worker events. */
  private readonly qrs = new Map<string, string>();
  /** State and number from worker events: fresher than the once-a-second status snapshots. */
  private readonly live = new Map<string, { state: InstanceStatus['state']; phone?: string; qrCount?: number }>();

  constructor(
    private readonly o: { registry: InstanceRegistry; supervisor: Supervisor; redis: Redis; keys: RedisKeys; log: Logger; staggerMs: number },
  ) {
    o.supervisor.on('ready', (slot) => this.onWorkerReady(slot));
    o.supervisor.on('exit', (slot) => {
      for (const [key, s] of this.assignment) if (s === slot) this.live.delete(key);
    });
    o.supervisor.on('event', (e) => {
      if (e.event === 'qr' && typeof e.data.qr === 'string') this.qrs.set(e.instanceKey, e.data.qr);
      if (e.event === 'open' || (e.event === 'state' && e.data.state !== 'awaiting_scan')) this.qrs.delete(e.instanceKey);
      const prev = this.live.get(e.instanceKey);
      if (e.event === 'state' && typeof e.data.state === 'string') this.live.set(e.instanceKey, { ...prev, state: e.data.state as InstanceStatus['state'] });
      // Linked: no QR is shown any more, whatever the last snapshot counted.
      if (e.event === 'open') this.live.set(e.instanceKey, { state: 'open', qrCount: 0, ...(typeof e.data.phone === 'string' ? { phone: e.data.phone } : {}) });
    });
  }

  /** Assigns every instance whose desired state is running (start-up restore). */
  async restore(): Promise<number> {
    const running = (await this.o.registry.list()).filter((r) => r.desired === 'running');
    for (const r of running) this.place(r.instanceKey);
    this.o.log.info({ instances: running.length }, 'instances restored from the registry');
    return running.length;
  }

  private place(instanceKey: string): number {
    const existing = this.assignment.get(instanceKey);
    if (existing !== undefined) return existing;
    const load = new Array<number>(this.o.supervisor.count).fill(0);
    for (const slot of this.assignment.values()) load[slot]! += 1;
    const slot = load.indexOf(Math.min(...load));
    this.assignment.set(instanceKey, slot);
    this.o.supervisor.send(slot, { type: 'assign', instanceKey });
    return slot;
  }

  private onWorkerReady(slot: number): void {
    // A new or respawned worker: hand it its instances, staggered so many
    // sessions do not reconnect to WhatsApp in the same instant.
    let i = 0;
    for (const [instanceKey, s] of this.assignment) {
      if (s !== slot) continue;
      this.o.supervisor.send(slot, { type: 'assign', instanceKey, delayMs: i * this.o.staggerMs });
      i += 1;
    }
  }

  slotOf(instanceKey: string): number | undefined {
    return this.assignment.get(instanceKey);
  }

  async list(): Promise<Array<InstanceRecord & { slot?: number; status?: InstanceStatus }>> {
    const records = await this.o.registry.list();
    return records.map((r) => {
      const slot = this.assignment.get(r.instanceKey);
      const snapshot = slot === undefined ? undefined : this.o.supervisor.state(slot).instances.find((i) => i.instanceKey === r.instanceKey);
      const live = slot === undefined ? undefined : this.live.get(r.instanceKey);
      const status: InstanceStatus | undefined = live
        ? { ...(snapshot ?? { instanceKey: r.instanceKey, qrCount: 0, inbound: { received: 0, relayed: 0, parked: 0, retried: 0, pending: 0 }, outbound: { sent: 0, failed: 0, pending: 0 } }), ...live }
        : snapshot;
      return { ...r, ...(slot !== undefined ? { slot } : {}), ...(status ? { status } : {}) };
    });
  }

  async create(o: { accountId: number; inboxId: number; notify?: InstanceRecord['notify'] }): Promise<{ record: InstanceRecord; created: boolean; slot: number }> {
    const { record, created } = await this.o.registry.upsert(o);
    const slot = this.place(record.instanceKey);
    return { record, created, slot };
  }

  /** Checks the instance exists, from the registry's memory: a control call never waits on Redis to know. */
  private known(instanceKey: string): Promise<void> {
    if (!parseInstanceKey(instanceKey)) return Promise.reject(new ControlError('bad_request', `instance: ${JSON.stringify(instanceKey)} is not <account>-<inbox>`, 400));
    if (!this.o.registry.has(instanceKey)) return Promise.reject(new ControlError('not_found', `no instance ${instanceKey}`, 404));
    return Promise.resolve();
  }

  async start(instanceKey: string): Promise<InstanceRecord> {
    await this.known(instanceKey);
    const record = (await this.o.registry.setDesired(instanceKey, 'running'))!;
    const slot = this.assignment.get(instanceKey);
    if (slot === undefined) this.place(instanceKey);
    else {
      // Already placed: restart its session (after a QR expiry or a halt).
      this.o.supervisor.send(slot, { type: 'unassign', instanceKey });
      this.o.supervisor.send(slot, { type: 'assign', instanceKey, delayMs: 100 });
    }
    return record;
  }

  async stop(instanceKey: string): Promise<InstanceRecord> {
    await this.known(instanceKey);
    const record = (await this.o.registry.setDesired(instanceKey, 'stopped'))!;
    const slot = this.assignment.get(instanceKey);
    this.assignment.delete(instanceKey);
    this.qrs.delete(instanceKey);
    this.live.delete(instanceKey);
    if (slot !== undefined) this.o.supervisor.send(slot, { type: 'unassign', instanceKey });
    return record;
  }

  async logout(instanceKey: string): Promise<void> {
    await this.known(instanceKey);
    const slot = this.assignment.get(instanceKey);
    if (slot !== undefined) await this.o.supervisor.request(slot, 'logout', instanceKey);
    await this.stop(instanceKey);
  }

  /** A control call to the worker that owns the instance. */
  async call(instanceKey: string, op: WorkerOp, args?: unknown): Promise<unknown> {
    await this.known(instanceKey);
    const slot = this.assignment.get(instanceKey);
    if (slot === undefined) throw new ControlError('not_running', `instance ${instanceKey} is stopped; start it first`, 409);
    return this.o.supervisor.request(slot, op, instanceKey, args);
  }

  currentQr(instanceKey: string): string | undefined {
    return this.qrs.get(instanceKey);
  }

  /** The sandbox's record of messages Ponte marked read. */
  async readReceipts(instanceKey: string): Promise<string[]> {
    await this.known(instanceKey);
    return this.o.redis.lrange(this.o.keys.sandboxRead(instanceKey), 0, -1);
  }

  /** The sandbox outbox: every message Ponte sent through the instance, in order; `deleted` when later revoked. */
  async outbox(instanceKey: string): Promise<OutboxEntry[]> {
    await this.known(instanceKey);
    const raw = await this.o.redis.lrange(this.o.keys.sandboxOutbox(instanceKey), 0, -1);
    const entries = raw.map((r) => JSON.parse(r) as OutboxEntry);
    const revoked = new Set(entries.filter((e) => e.type === 'revoke' && e.targetId).map((e) => e.targetId!));
    return entries.filter((e) => e.type !== 'revoke').map((e) => (revoked.has(e.id) ? { ...e, deleted: true } : e));
  }
}
