/** The primary's control plane: instances, their worker slots, and control calls to the worker that runs each. */
import { ControlError, type WorkerOp } from '../cluster/ipc.js';
import type { InstanceRecord, InstanceSettingsPatch, InstanceStatus, InstanceView } from '../model/instance.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import type { InstanceRegistry } from './registry.js';
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
    private readonly deps: { registry: InstanceRegistry; supervisor: Supervisor; log: Logger; staggerMs: number },
  ) {
    deps.supervisor.on('ready', (slot) => this.onWorkerReady(slot));
    deps.supervisor.on('exit', (slot) => {
      for (const [key, s] of this.assignment) if (s === slot) this.live.delete(key);
    });
    deps.supervisor.on('event', (e) => {
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
    const running = (await this.deps.registry.list()).filter((r) => r.desired === 'running');
    for (const r of running) this.place(r.instanceKey);
    this.deps.log.info({ instances: running.length }, 'instances restored from the registry');
    return running.length;
  }

  private place(instanceKey: string): number {
    const existing = this.assignment.get(instanceKey);
    if (existing !== undefined) return existing;
    const load = new Array<number>(this.deps.supervisor.count).fill(0);
    for (const slot of this.assignment.values()) load[slot]! += 1;
    const slot = load.indexOf(Math.min(...load));
    this.assignment.set(instanceKey, slot);
    this.deps.supervisor.send(slot, { type: 'assign', instanceKey });
    return slot;
  }

  private onWorkerReady(slot: number): void {
    // A new or respawned worker: hand it its instances, staggered so many
    // sessions do not reconnect to WhatsApp in the same instant.
    let i = 0;
    for (const [instanceKey, s] of this.assignment) {
      if (s !== slot) continue;
      this.deps.supervisor.send(slot, { type: 'assign', instanceKey, delayMs: i * this.deps.staggerMs });
      i += 1;
    }
  }

  slotOf(instanceKey: string): number | undefined {
    return this.assignment.get(instanceKey);
  }

  async list(): Promise<InstanceView[]> {
    const records = await this.deps.registry.list();
    return records.map((r) => {
      const slot = this.assignment.get(r.instanceKey);
      const snapshot = slot === undefined ? undefined : this.deps.supervisor.state(slot).instances.find((i) => i.instanceKey === r.instanceKey);
      const live = slot === undefined ? undefined : this.live.get(r.instanceKey);
      const status: InstanceStatus | undefined = live
        ? { ...(snapshot ?? { instanceKey: r.instanceKey, qrCount: 0, inbound: { received: 0, relayed: 0, parked: 0, retried: 0, pending: 0 }, outbound: { sent: 0, failed: 0, pending: 0 } }), ...live }
        : snapshot;
      return { ...r, ...(slot !== undefined ? { slot } : {}), ...(status ? { status } : {}) };
    });
  }

  /** The registry record of an instance, if there is one. */
  record(instanceKey: string): Promise<InstanceRecord | undefined> {
    return this.deps.registry.get(instanceKey);
  }

  async create(request: { accountId: number; inboxId: number; notify?: InstanceRecord['notify'] }): Promise<{ record: InstanceRecord; created: boolean; slot: number }> {
    const { record, created } = await this.deps.registry.upsert(request);
    const slot = this.place(record.instanceKey);
    return { record, created, slot };
  }

  /** Checks the instance exists, from the registry's memory: a control call never waits on Redis to know. */
  known(instanceKey: string): Promise<void> {
    if (!parseInstanceKey(instanceKey)) return Promise.reject(new ControlError('bad_request', `instance: ${JSON.stringify(instanceKey)} is not <account>-<inbox>`));
    if (!this.deps.registry.has(instanceKey)) return Promise.reject(new ControlError('not_found', `no instance ${instanceKey}`));
    return Promise.resolve();
  }

  /** Changes the instance's own settings; its worker reads them at each use, so nothing restarts. */
  async updateSettings(instanceKey: string, patch: InstanceSettingsPatch): Promise<InstanceRecord> {
    await this.known(instanceKey);
    const record = await this.deps.registry.updateSettings(instanceKey, patch);
    if (!record) throw new ControlError('not_found', `no instance ${instanceKey}`);
    return record;
  }

  async start(instanceKey: string): Promise<InstanceRecord> {
    await this.known(instanceKey);
    const record = (await this.deps.registry.setDesired(instanceKey, 'running'))!;
    const slot = this.assignment.get(instanceKey);
    if (slot === undefined) this.place(instanceKey);
    else {
      // Already placed: restart its session (after a QR expiry or a halt).
      this.deps.supervisor.send(slot, { type: 'unassign', instanceKey });
      this.deps.supervisor.send(slot, { type: 'assign', instanceKey, delayMs: 100 });
    }
    return record;
  }

  async stop(instanceKey: string): Promise<InstanceRecord> {
    await this.known(instanceKey);
    const record = (await this.deps.registry.setDesired(instanceKey, 'stopped'))!;
    const slot = this.assignment.get(instanceKey);
    this.assignment.delete(instanceKey);
    this.qrs.delete(instanceKey);
    this.live.delete(instanceKey);
    if (slot !== undefined) this.deps.supervisor.send(slot, { type: 'unassign', instanceKey });
    return record;
  }

  async logout(instanceKey: string): Promise<void> {
    await this.known(instanceKey);
    const slot = this.assignment.get(instanceKey);
    if (slot !== undefined) await this.deps.supervisor.request(slot, 'logout', instanceKey);
    await this.stop(instanceKey);
  }

  /** A control call to the worker that owns the instance. */
  async call(instanceKey: string, op: WorkerOp, args?: unknown, timeoutMs?: number): Promise<unknown> {
    await this.known(instanceKey);
    const slot = this.assignment.get(instanceKey);
    if (slot === undefined) throw new ControlError('not_running', `instance ${instanceKey} is stopped; start it first`);
    return this.deps.supervisor.request(slot, op, instanceKey, args, timeoutMs);
  }

  currentQr(instanceKey: string): string | undefined {
    return this.qrs.get(instanceKey);
  }
}
