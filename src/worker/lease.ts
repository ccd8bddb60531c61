/** The Redis lease that lets exactly one process run an instance at a time. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';

/**
 * A lease's value is `<holder>#<epoch>`: the epoch comes from a counter per
 * instance incremented at every acquisition, so each new holder carries a
 * larger one than every holder before it.
 *
 * Renew. Ours: renewed (1). Gone (Redis lost it, or it expired while this
 * holder was away or paused) and nobody acquired it since (the counter still
 * shows our epoch, or Redis lost the counter too): taken again (1). Anyone
 * else's, or acquired by someone since: lost (0).
 * KEYS: lease, epoch counter. ARGV: value, ttl, epoch.
 */
const RENEW = new LuaScript<number>('LeaseRenew', `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not v then
  local e = redis.call('GET', KEYS[2])
  if (not e) or e == ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    if not e then redis.call('SET', KEYS[2], ARGV[3]) end
    return 1
  end
end
return 0
`);

const RELEASE = new LuaScript<number>('LeaseRelease', `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/**
 * Free, already this holder's, or held by a session of the same owner (a
 * dead predecessor in this worker slot, or this slot's previous session of
 * the instance): take it, with a new epoch unless it is already ours.
 * Returns the value now in the key, or false.
 * KEYS: lease, epoch counter. ARGV: holder, owner prefix ('' for none), ttl.
 */
const ACQUIRE = new LuaScript<string | null>('LeaseAcquire', `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '#' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return v
end
if (not v) or (ARGV[2] ~= '' and string.sub(v, 1, string.len(ARGV[2])) == ARGV[2]) then
  local value = ARGV[1] .. '#' .. redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
  return value
end
return false
`);

export interface LeaseOptions {
  /** How long a lease outlives its holder if not renewed. */
  ttlMs?: number;
  /** Renewal period; a third of the TTL by default. */
  renewEveryMs?: number;
  /**
   * The owner this holder belongs to (e.g. `host:primary-pid:slot:`): a lease
   * held by another session of the same owner is taken over at once (its
   * process died, or it is the session being replaced), while one of any
   * other owner is waited for.
   */
  ownerPrefix?: string;
}

/** A holder id for one session of `owner`: `<owner><random>`, readable in Redis when diagnosing. */
export function sessionHolderId(owner: string): string {
  return `${owner}${randomBytes(4).toString('hex')}`;
}

/**
 * The guard of "one socket per instance" (DESIGN.md, Decisions 6): a Redis
 * key per instance set to a holder id (one per session), renewed while the
 * session runs, released on stop; only the holder renews or releases it, so
 * a slow stop cannot free the lease of the session that replaced it. A holder checks it before opening a socket
 * and before writing auth state; when a renewal finds the key gone or taken,
 * `onLost` fires and the session must close its socket at once.
 */
export class InstanceLease {
  private timer: NodeJS.Timeout | undefined;
  private held = false;
  /** The key's value while held: `<holder>#<epoch>`. */
  private value = '';
  /** When Redis last confirmed the lease (monotonic ms). */
  private confirmedAt = 0;
  private readonly ttlMs: number;
  private readonly renewEveryMs: number;
  private readonly ownerPrefix: string;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    readonly instanceKey: string,
    readonly holder: string,
    private readonly onLost: () => void,
    options: LeaseOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 15_000;
    this.renewEveryMs = options.renewEveryMs ?? Math.floor(this.ttlMs / 3);
    this.ownerPrefix = options.ownerPrefix ?? '';
  }

  private get key(): string {
    return this.keys.lease(this.instanceKey);
  }

  /**
   * The lease key and the value this holder put there (its epoch included):
   * the auth store refuses a write once Redis holds another. Read at each
   * write, so it follows the lease.
   */
  get fence(): { leaseKey: string; holder: string } {
    const value = (): string => this.value;
    return {
      leaseKey: this.key,
      get holder() {
        return value();
      },
    };
  }

  get isHeld(): boolean {
    return this.held;
  }

  /** This holder's epoch while it holds the lease (0 before). */
  get epoch(): number {
    return epochOf(this.value);
  }

  /**
   * True while Redis confirmed the lease recently enough that it cannot have
   * expired since (two thirds of the TTL): a process that was paused past
   * that (a long GC, a frozen VM) distrusts it until a renewal answers.
   * Checked before each send, without a round trip.
   */
  get trusted(): boolean {
    return this.held && performance.now() - this.confirmedAt < (this.ttlMs * 2) / 3;
  }

  /** Takes the lease (or confirms this holder has it) and starts renewing; false when another owner has it. */
  async acquire(): Promise<boolean> {
    const value = await ACQUIRE.run(this.redis, [this.key, this.keys.leaseEpoch(this.instanceKey)], [this.holder, this.ownerPrefix, String(this.ttlMs)]);
    if (typeof value !== 'string') return false;
    this.value = value;
    this.confirmedAt = performance.now();
    this.startRenewing();
    return true;
  }

  /** True while Redis still holds this holder's value (checked before auth writes and socket opens). */
  async verify(): Promise<boolean> {
    return this.value !== '' && (await this.redis.get(this.key)) === this.value;
  }

  /** Who holds the lease now, if anyone: the holder id, without its epoch. */
  static async holderOf(redis: Redis, keys: RedisKeys, instanceKey: string): Promise<string | null> {
    const v = await redis.get(keys.lease(instanceKey));
    return v === null ? null : v.replace(/#\d+$/, '');
  }

  async release(): Promise<void> {
    this.stopRenewing();
    this.held = false;
    await RELEASE.run(this.redis, [this.key], [this.value]);
  }

  private async renewOnce(): Promise<boolean> {
    const started = performance.now();
    const ok = (await RENEW.run(this.redis, [this.key, this.keys.leaseEpoch(this.instanceKey)], [this.value, String(this.ttlMs), String(this.epoch)])) === 1;
    if (ok) this.confirmedAt = started;
    return ok;
  }

  private startRenewing(): void {
    this.held = true;
    this.stopRenewing();
    this.timer = setInterval(() => {
      this.renewOnce().then(
        (ok) => {
          if (!ok && this.held) this.lose();
        },
        // Redis unreachable: keep trying until the TTL runs out; a later
        // successful renewal (or a failed one) settles it.
        () => undefined,
      );
    }, this.renewEveryMs);
    this.timer.unref();
  }

  private lose(): void {
    this.stopRenewing();
    this.held = false;
    this.onLost();
  }

  private stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** The epoch in a lease value (`<holder>#<epoch>`), 0 when it has none. */
export function epochOf(value: string): number {
  const m = /#(\d+)$/.exec(value);
  return m ? Number(m[1]) : 0;
}
