import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { RedisKeys } from '../queue/keys.js';

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export interface LeaseOptions {
  /** How long a lease outlives its holder if not renewed. */
  ttlMs?: number;
  /** Renewal period; a third of the TTL by default. */
  renewEveryMs?: number;
}

/** A process-unique holder id: `host:pid:random`, readable in Redis when diagnosing. */
export function newHolderId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/**
 * The guard of "one socket per instance" (DESIGN.md, Decisions 6): a Redis
 * key per instance set with `SET NX PX` to a holder id, renewed while the
 * session runs, released on stop. A holder checks it before opening a socket
 * and before writing auth state; when a renewal finds the key gone or taken,
 * `onLost` fires and the session must close its socket at once.
 */
export class InstanceLease {
  private timer: NodeJS.Timeout | undefined;
  private held = false;
  private readonly ttlMs: number;
  private readonly renewEveryMs: number;

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
  }

  private get key(): string {
    return this.keys.lease(this.instanceKey);
  }

  get isHeld(): boolean {
    return this.held;
  }

  /** Takes the lease (or confirms this holder has it) and starts renewing; false when another holder has it. */
  async acquire(): Promise<boolean> {
    const set = await this.redis.set(this.key, this.holder, 'PX', this.ttlMs, 'NX');
    const ok = set === 'OK' || (await this.renewOnce());
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
    await this.redis.eval(RELEASE, 1, this.key, this.holder);
  }

  private async renewOnce(): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.key, this.holder, String(this.ttlMs))) === 1;
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
