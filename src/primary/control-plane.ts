/** The primary's control plane: instances, their worker slots, and control calls to the worker that runs each. */
import { ControlError, type WorkerOp } from '../cluster/ipc.js';
import type { InstanceRecord, InstanceSettingsPatch, InstanceStatus, InstanceView } from '../model/instance.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import type { InstanceRegistry } from './registry.js';
import type { HostBeat } from './hosts.js';
import { Placement, type PlacementDeps } from './placement.js';
import type { Supervisor } from './supervisor.js';

/** Host-level operations a host asks of an instance's owner, besides the worker's own. */
export type HostOp = 'qr' | 'restart' | 'logout' | 'release';

const HOST_OPS = new Set<string>(['qr', 'restart', 'logout', 'release']);

export interface ControlPlaneDeps {
  registry: InstanceRegistry;
  supervisor: Supervisor;
  log: Logger;
  staggerMs: number;
  hostId: string;
  /** The live hosts, each with what it runs (heartbeats), and whether one still beats. */
  hosts: { live(): Promise<HostBeat[]>; answering(hostId: string): Promise<boolean> };
  /** Calls to the owner of an instance on another host. */
  rpc: { call(hostId: string, op: string, instanceKey: string, args: unknown, timeoutMs: number): Promise<unknown> };
  /** Placement among hosts: claims in Redis. */
  placement: Omit<PlacementDeps, 'local' | 'running' | 'liveHosts' | 'staggerMs' | 'log'>;
  /** Deadline of a control call when the caller names none. */
  callTimeoutMs?: number;
}

/**
 * The primary's view of instances: the registry (desired state, in Redis),
 * the placement of each running instance on one host (claims in Redis, see
 * `Placement`), its assignment to one worker slot of this host, and what the
 * workers last reported. A call for an instance another host runs goes to
 * that host (`HostRpc`), so every route works through any host.
 *
 * Assignment to slots is sticky and balanced: a new instance goes to the
 * slot with the fewest instances, and nothing else moves; a worker that dies
 * is forked again for the same slot and gets the same instances back.
 */
export class ControlPlane {
  private readonly assignment = new Map<string, number>();
  /** The QR an instance currently shows, from worker events. */
  private readonly qrs = new Map<string, string>();
  /** State and number from worker events: fresher than the once-a-second status snapshots. */
  private readonly live = new Map<string, { state: InstanceStatus['state']; phone?: string; qrCount?: number }>();
  readonly placement: Placement;

  constructor(private readonly deps: ControlPlaneDeps) {
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
    this.placement = new Placement({
      ...deps.placement,
      staggerMs: deps.staggerMs,
      log: deps.log.child({ module: 'placement' }),
      running: async () => (await deps.registry.list()).filter((r) => r.desired === 'running').map((r) => r.instanceKey),
      liveHosts: () => deps.hosts.live(),
      local: {
        localKeys: () => [...this.assignment.keys()],
        pickSlot: () => this.pickSlot(),
        slotOf: (key) => this.assignment.get(key),
        assignLocal: (key, slot, delayMs) => this.assignLocal(key, slot, delayMs),
        unassignLocal: (key) => this.unassignLocal(key),
      },
    });
  }

  private get hostId(): string {
    return this.deps.hostId;
  }

  /** The slot with the fewest instances. */
  private pickSlot(): number {
    const load = new Array<number>(this.deps.supervisor.count).fill(0);
    for (const slot of this.assignment.values()) load[slot]! += 1;
    return load.indexOf(Math.min(...load));
  }

  private assignLocal(instanceKey: string, slot: number, delayMs: number): void {
    if (this.assignment.has(instanceKey)) return;
    this.assignment.set(instanceKey, slot);
    this.deps.supervisor.send(slot, { type: 'assign', instanceKey, delayMs });
  }

  private unassignLocal(instanceKey: string): void {
    const slot = this.assignment.get(instanceKey);
    this.assignment.delete(instanceKey);
    this.qrs.delete(instanceKey);
    this.live.delete(instanceKey);
    if (slot !== undefined) this.deps.supervisor.send(slot, { type: 'unassign', instanceKey });
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

  /** The host and slot running the instance: this host's assignment, or the claim of another. */
  async ownerOf(instanceKey: string): Promise<{ hostId: string; slot: number } | undefined> {
    const slot = this.assignment.get(instanceKey);
    if (slot !== undefined) return { hostId: this.hostId, slot };
    const owner = await this.placement.ownerOf(instanceKey);
    return owner?.hostId === this.hostId ? undefined : owner;
  }

  /** This host's instances as views (slot and latest status), for its heartbeat and its own listing. */
  localViews(): Array<{ instanceKey: string; slot: number; status?: InstanceStatus }> {
    return [...this.assignment].map(([instanceKey, slot]) => {
      const status = this.localStatus(instanceKey, slot);
      return { instanceKey, slot, ...(status ? { status } : {}) };
    });
  }

  private localStatus(instanceKey: string, slot: number): InstanceStatus | undefined {
    const snapshot = this.deps.supervisor.state(slot).instances.find((i) => i.instanceKey === instanceKey);
    const live = this.live.get(instanceKey);
    return live
      ? { ...(snapshot ?? { instanceKey, qrCount: 0, inbound: { received: 0, relayed: 0, parked: 0, retried: 0, pending: 0 }, outbound: { sent: 0, failed: 0, pending: 0 } }), ...live }
      : snapshot;
  }

  /** Every instance; those other hosts run with their status from `beats` (read here when not given). */
  async list(beats?: readonly HostBeat[]): Promise<InstanceView[]> {
    const records = await this.deps.registry.list();
    const remote = new Map<string, { hostId: string; slot: number; status?: InstanceStatus }>();
    if (records.some((r) => !this.assignment.has(r.instanceKey))) {
      for (const h of beats ?? (await this.deps.hosts.live())) {
        if (h.hostId === this.hostId) continue;
        for (const i of h.instances) remote.set(i.instanceKey, { hostId: h.hostId, slot: i.slot, ...(i.status ? { status: i.status } : {}) });
      }
    }
    return records.map((r) => {
      const slot = this.assignment.get(r.instanceKey);
      if (slot !== undefined) {
        const status = this.localStatus(r.instanceKey, slot);
        return { ...r, host: this.hostId, slot, ...(status ? { status } : {}) };
      }
      const other = remote.get(r.instanceKey);
      return other ? { ...r, host: other.hostId, slot: other.slot, ...(other.status ? { status: other.status } : {}) } : r;
    });
  }

  /** The registry record of an instance, if there is one. */
  record(instanceKey: string): Promise<InstanceRecord | undefined> {
    return this.deps.registry.get(instanceKey);
  }

  /** Creates (or starts) the instance; the least-loaded host takes it, this one if it may. */
  async create(request: { accountId: number; inboxId: number; notify?: InstanceRecord['notify'] }): Promise<{ record: InstanceRecord; created: boolean; host?: string; slot?: number }> {
    const { record, created } = await this.deps.registry.upsert(request);
    await this.placeNow();
    const owner = await this.ownerOf(record.instanceKey);
    return { record, created, ...(owner ? { host: owner.hostId, slot: owner.slot } : {}) };
  }

  /** A placement pass here, and the other hosts told to make theirs: a number waiting for a host gets one at once. */
  private async placeNow(): Promise<void> {
    await this.placement.tick();
    this.deps.placement.nudge();
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
    // Already placed: restart its session (after a QR expiry or a halt), wherever it runs.
    const owner = await this.ownerOf(instanceKey);
    if (owner) await this.onOwner(owner.hostId, 'restart', instanceKey, undefined);
    else await this.placeNow();
    return record;
  }

  async stop(instanceKey: string): Promise<InstanceRecord> {
    await this.known(instanceKey);
    const record = (await this.deps.registry.setDesired(instanceKey, 'stopped'))!;
    const owner = await this.ownerOf(instanceKey);
    // Its owner also sees it stopped at its next placement pass; asking saves the wait.
    if (owner) await this.onOwner(owner.hostId, 'release', instanceKey, undefined).catch(() => undefined);
    return record;
  }

  async logout(instanceKey: string): Promise<void> {
    await this.known(instanceKey);
    const owner = await this.ownerOf(instanceKey);
    if (owner) await this.onOwner(owner.hostId, 'logout', instanceKey, undefined);
    await this.stop(instanceKey);
  }

  /** A control call to the worker that runs the instance, on this host or another. */
  async call(instanceKey: string, op: WorkerOp, args?: unknown, timeoutMs?: number): Promise<unknown> {
    await this.known(instanceKey);
    const owner = await this.ownerOf(instanceKey);
    if (!owner) {
      const record = await this.deps.registry.get(instanceKey);
      if (record?.desired === 'stopped') throw new ControlError('not_running', `instance ${instanceKey} is stopped; start it first`);
      throw new ControlError('worker_unavailable', `instance ${instanceKey} is moving to another host; try again in a moment`);
    }
    return this.onOwner(owner.hostId, op, instanceKey, args, timeoutMs);
  }

  /** Runs `op` where the instance runs: here, or through the owner host. */
  private async onOwner(hostId: string, op: WorkerOp | HostOp, instanceKey: string, args: unknown, timeoutMs?: number): Promise<unknown> {
    const deadline = timeoutMs ?? this.deps.callTimeoutMs ?? 10_000;
    if (hostId === this.hostId) return this.handleHere(op, instanceKey, args, deadline);
    // A host that stopped beating would only let the call time out: say so at once.
    if (!(await this.deps.hosts.answering(hostId))) throw new ControlError('worker_unavailable', `host ${hostId}, which runs ${instanceKey}, stopped answering; the number moves to another host once its placement expires (INSTANCE_LEASE_TTL_MS)`);
    return this.deps.rpc.call(hostId, op, instanceKey, args, deadline);
  }

  /** A call this host runs for an instance it owns (from itself, or from another host). */
  async handleHere(op: string, instanceKey: string, args: unknown, timeoutMs: number): Promise<unknown> {
    const slot = this.assignment.get(instanceKey);
    if (slot === undefined) throw new ControlError('worker_unavailable', `instance ${instanceKey} is moving to another host; try again in a moment`);
    if (!HOST_OPS.has(op)) return this.deps.supervisor.request(slot, op as WorkerOp, instanceKey, args, timeoutMs);
    switch (op as HostOp) {
      case 'qr':
        return { qr: this.qrs.get(instanceKey) ?? null };
      case 'restart':
        this.deps.supervisor.send(slot, { type: 'unassign', instanceKey });
        this.deps.supervisor.send(slot, { type: 'assign', instanceKey, delayMs: 100 });
        return { ok: true };
      case 'logout':
        return this.deps.supervisor.request(slot, 'logout', instanceKey, args, timeoutMs);
      case 'release':
        await this.placement.tick();
        return { ok: true };
    }
  }

  /** The QR the instance shows now, wherever it runs. */
  async currentQr(instanceKey: string): Promise<string | undefined> {
    const owner = await this.ownerOf(instanceKey);
    if (!owner) return undefined;
    const { qr } = (await this.onOwner(owner.hostId, 'qr', instanceKey, undefined)) as { qr: string | null };
    return qr ?? undefined;
  }
}
