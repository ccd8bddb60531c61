/** The hosts sharing one Redis prefix: each primary's heartbeat, with what it runs, and who is alive. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AppError } from '../lib/errors.js';
import type { InstanceStatus } from '../model/instance.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';

export class HostIdInUseError extends AppError {
  readonly code = 'HOST_ID_IN_USE';
}

export class MixedAuthStoresError extends AppError {
  readonly code = 'MIXED_AUTH_STORES';
}

/** What one host says about itself in its heartbeat. */
export interface HostReport {
  pid: number;
  version: string;
  startedAtMs: number;
  authStore: 'file' | 'redis';
  workers: { total: number; ready: number };
  /** Stopping: it hands its numbers over and takes no new ones. */
  draining: boolean;
  /** The instances it runs: slot and last status (the QR shown included). */
  instances: Array<{ instanceKey: string; slot: number; status?: InstanceStatus }>;
}

export interface HostBeat extends HostReport {
  hostId: string;
  /** One per process: tells this process's heartbeat from another's with the same HOST_ID. */
  nonce: string;
  seenAtMs: number;
}

export interface HostEntry {
  hostId: string;
  /** Its heartbeat is still in Redis: it may hold leases and placements. */
  alive: boolean;
  /** Its heartbeat was renewed within the last few beats, as `answering()` tells. */
  answering: boolean;
  lastSeenAtMs: number;
  beat?: HostBeat;
}

/** Hosts not seen for this long leave the list. */
const FORGET_AFTER_MS = 24 * 3600_000;

/**
 * This host's heartbeat in Redis (`host:<id>`, expiring after the lease
 * TTL, renewed every second) and the list of every host on the prefix
 * (`hosts`, host id → last seen). A host whose heartbeat expired is down:
 * its placements expire with it, and the other hosts take its numbers.
 */
export class HostDirectory {
  private readonly nonce = randomBytes(8).toString('hex');
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      redis: Redis;
      keys: RedisKeys;
      hostId: string;
      ttlMs: number;
      report: () => HostReport;
      log: Logger;
      beatEveryMs?: number;
    },
  ) {}

  get hostId(): string {
    return this.deps.hostId;
  }

  private get beatEveryMs(): number {
    return this.deps.beatEveryMs ?? Math.max(100, Math.min(1000, Math.floor(this.deps.ttlMs / 4)));
  }

  /**
   * Joins: refuses a HOST_ID another live process uses (after waiting one
   * TTL, in case it is a predecessor that just died), then beats.
   */
  async join(): Promise<void> {
    const { redis, keys, hostId, ttlMs } = this.deps;
    const until = Date.now() + ttlMs + 2000;
    for (let waited = false; ; waited = true) {
      const raw = await redis.get(keys.host(hostId));
      const other = raw ? (JSON.parse(raw) as HostBeat) : undefined;
      if (!other || other.nonce === this.nonce) break;
      if (Date.now() > until) throw new HostIdInUseError(`another Ponte process (pid ${other.pid}) is running as HOST_ID=${hostId} on this Redis prefix; give each host its own HOST_ID`);
      if (!waited) this.deps.log.warn({ hostId, pid: other.pid }, 'a heartbeat with this HOST_ID is still alive (a predecessor that just died, or a second process): waiting for it to expire');
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch((err: unknown) => this.deps.log.debug({ err }, 'heartbeat failed')), this.beatEveryMs);
    this.timer.unref();
  }

  /** Writes the heartbeat now (also called when something changed that other hosts should see). */
  beat(): Promise<void> {
    this.beating ??= (async () => {
      try {
        const { redis, keys, hostId, ttlMs } = this.deps;
        const beat: HostBeat = { hostId, nonce: this.nonce, seenAtMs: Date.now(), ...this.deps.report() };
        await redis
          .multi()
          .set(keys.host(hostId), JSON.stringify(beat), 'PX', ttlMs)
          .zadd(keys.hosts, beat.seenAtMs, hostId)
          .exec();
      } finally {
        this.beating = undefined;
      }
    })();
    return this.beating;
  }

  /**
   * Whether the host beat within the last few beats, from its heartbeat's
   * remaining TTL in Redis (no clock of another host involved): a host that
   * stopped answering is known within seconds, long before its numbers move.
   */
  async answering(hostId: string): Promise<boolean> {
    return this.fresh(await this.deps.redis.pttl(this.deps.keys.host(hostId)));
  }

  /** Whether a heartbeat with `leftMs` of its TTL left was written within the last few beats. */
  private fresh(leftMs: number): boolean {
    return leftMs >= 0 && this.deps.ttlMs - leftMs <= Math.max(3 * this.beatEveryMs, 2000);
  }

  /** The live hosts' heartbeats, this one's included. */
  async live(): Promise<HostBeat[]> {
    return (await this.all()).flatMap((e) => (e.beat ? [e.beat] : []));
  }

  /** Every host seen in the last day, alive or not. */
  async all(): Promise<HostEntry[]> {
    const { redis, keys } = this.deps;
    const ids = await redis.zrange(keys.hosts, '0', '-1', 'WITHSCORES');
    const hosts: Array<{ hostId: string; lastSeenAtMs: number }> = [];
    for (let i = 0; i < ids.length; i += 2) hosts.push({ hostId: ids[i]!, lastSeenAtMs: Number(ids[i + 1]) });
    const now = Date.now();
    const stale = hosts.filter((h) => now - h.lastSeenAtMs > FORGET_AFTER_MS).map((h) => h.hostId);
    if (stale.length > 0) await redis.zrem(keys.hosts, ...stale);
    const current = hosts.filter((h) => !stale.includes(h.hostId));
    const read = redis.pipeline();
    for (const h of current) read.get(keys.host(h.hostId)).pttl(keys.host(h.hostId));
    const replies = current.length === 0 ? [] : ((await read.exec()) ?? []);
    const entries = current.map((h, i): HostEntry => {
      const [getErr, raw] = replies[2 * i] ?? [];
      const [ttlErr, left] = replies[2 * i + 1] ?? [];
      const failed = getErr ?? ttlErr;
      if (failed) throw failed;
      const beat = typeof raw === 'string' ? (JSON.parse(raw) as HostBeat) : undefined;
      const answering = beat !== undefined && this.fresh(Number(left));
      return { hostId: h.hostId, alive: beat !== undefined, answering, lastSeenAtMs: beat?.seenAtMs ?? h.lastSeenAtMs, ...(beat ? { beat } : {}) };
    });
    return entries.sort((a, b) => a.hostId.localeCompare(b.hostId));
  }

  /** Stops beating and removes the heartbeat: the other hosts see this one gone at once. */
  async leave(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.beating?.catch(() => undefined);
    const { redis, keys, hostId } = this.deps;
    const raw = await redis.get(keys.host(hostId));
    if (raw && (JSON.parse(raw) as HostBeat).nonce === this.nonce) await redis.del(keys.host(hostId));
  }
}
