/** The Redis lease that lets exactly one process run an instance at a time. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';

/**
 * Ours: renewed (1). Gone (Redis lost it, or it expired while Redis was
 * away): taken again (1), nobody else can hold it since. Another holder's: 0.
 */
const RENEW = new LuaScript<number>('LeaseRenew', `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`);

const RELEASE = new LuaScript<number>('LeaseRelease', `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/**
 * Free, already ours, or held by a session of the same owner (a dead
 * predecessor in this worker slot, or this slot's previous session of the
 * instance): take it. ARGV: token, owner prefix ('' for none), ttl.
 */
const ACQUIRE = new LuaScript<number>('LeaseAcquire', `
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] or (ARGV[2] ~= '' and string.sub(v, 1, string.len(ARGV[2])) == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
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

  /** The lease key and this holder: the auth store refuses a write once Redis names another. */
  get fence(): { leaseKey: string; holder: string } {
    return { leaseKey: this.key, holder: this.holder };
  }

  get isHeld(): boolean {
    return this.held;
  }

  /** Takes the lease (or confirms this holder has it) and starts renewing; false when another owner has it. */
  async acquire(): Promise<boolean> {
    const ok = (await ACQUIRE.run(this.redis, [this.key], [this.holder, this.ownerPrefix, String(this.ttlMs)])) === 1;
    if (ok) this.startRenewing();
    return ok;
  }

  /** True while Redis still names this holder (checked before auth writes). */
  async verify(): Promise<boolean> {
    return (await this.redis.get(this.key)) === this.holder;
  }

  /** Who holds the lease now, if anyone. */
  static async holderOf(redis: Redis, keys: RedisKeys, instanceKey: string): Promise<string | null> {
    return redis.get(keys.lease(instanceKey));
  }

  async release(): Promise<void> {
    this.stopRenewing();
    this.held = false;
    await RELEASE.run(this.redis, [this.key], [this.holder]);
  }

  private async renewOnce(): Promise<boolean> {
    return (await RENEW.run(this.redis, [this.key], [this.holder, String(this.ttlMs)])) === 1;
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
