/** Which host runs each instance: claims in Redis, taken by the least-loaded live host, handed over slowly. */
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';
import type { HostBeat } from './hosts.js';

/** Where an instance runs: its host and the worker slot there. */
export interface Owner {
  hostId: string;
  slot: number;
}

export function parseOwner(value: string | null | undefined): Owner | undefined {
  if (!value) return undefined;
  const i = value.lastIndexOf('/');
  const slot = Number(value.slice(i + 1));
  return i > 0 && Number.isInteger(slot) ? { hostId: value.slice(0, i), slot } : undefined;
}

/** Renews each claim still holding this host's value. KEYS: claims. ARGV: ttl, then each claim's value. Returns 1/0 per key. */
const RENEW = new LuaScript<number[]>('PlacementRenew', `
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[i + 1] then
    redis.call('PEXPIRE', k, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`);

/** Rewrites a claim of this host (another slot, a fresh TTL). KEYS: claim. ARGV: `<hostId>/`, new value, ttl. */
const ADOPT = new LuaScript<number>('PlacementAdopt', `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`);

/** Deletes a claim when it names this host. KEYS: claim. ARGV: `<hostId>/`. */
const RELEASE = new LuaScript<number>('PlacementRelease', `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/**
 * How many numbers each live host should run: `floor(total / hosts)` each,
 * one more for the `total % hosts` hosts that run the most now (the fewest
 * moves), ties by host id. Every host computes the same from the same loads.
 */
export function quotasFor(loads: ReadonlyMap<string, number>, total: number): Map<string, number> {
  const hosts = [...loads.keys()].sort((a, b) => loads.get(b)! - loads.get(a)! || a.localeCompare(b));
  const base = Math.floor(total / hosts.length);
  const extra = total % hosts.length;
  return new Map(hosts.map((h, i) => [h, base + (i < extra ? 1 : 0)]));
}

/** The instances this host runs, as the control plane keeps them. */
export interface LocalInstances {
  /** The instances assigned to this host's workers. */
  localKeys(): string[];
  /** The worker slot a new instance would go to. */
  pickSlot(): number;
  /** The slot an instance runs on here. */
  slotOf(instanceKey: string): number | undefined;
  /** Starts the instance on `slot` after `delayMs`. */
  assignLocal(instanceKey: string, slot: number, delayMs: number): void;
  /** Stops the instance here (its session closes, its lease is released). */
  unassignLocal(instanceKey: string): void;
}

export interface PlacementDeps {
  redis: Redis;
  keys: RedisKeys;
  hostId: string;
  /** Claims expire after this unless renewed: a dead host's numbers are free again after it. */
  ttlMs: number;
  /** Least time between two numbers handed to a host below its share. */
  spacingMs: number;
  /** Delay between the starts of the numbers claimed at once. */
  staggerMs: number;
  /** The instances whose desired state is running (the registry). */
  running(): Promise<string[]>;
  /** The live hosts' heartbeats. */
  liveHosts(): Promise<HostBeat[]>;
  local: LocalInstances;
  /** Tells the other hosts to look again now (a number was freed or created). */
  nudge(): void;
  log: Logger;
}

/**
 * Placement among hosts. Each running instance has a claim
 * (`placement:<instance>` = `<hostId>/<slot>`, with the lease TTL) renewed by
 * its host every tick; the worker's own lease still guards the socket. Each
 * tick a host:
 * - renews its claims, and stops an instance whose claim another host holds;
 * - takes free instances (new ones, a dead host's once their claims
 *   expired) up to its quota (`quotasFor`: the numbers spread evenly over
 *   the live hosts), all in one pass: a dead host's numbers open at once;
 * - above its quota while another host is below its own, hands one number
 *   over (its session stops and frees the lease, then the claim goes), at
 *   most one every `spacingMs`: a host that joins takes its share slowly.
 * A draining host (SIGTERM) takes nothing and gives everything back.
 */
export class Placement {
  private timer: NodeJS.Timeout | undefined;
  /** The pass under way, if any. */
  private passing: Promise<void> | undefined;
  private again = false;
  private draining = false;
  private lastHandOverMs = 0;
  private readonly releasing = new Set<string>();
  /** Passes have been failing since (Redis away): logged once per streak. */
  private failingSince: number | undefined;

  constructor(private readonly deps: PlacementDeps) {}

  private get value(): (slot: number) => string {
    return (slot) => `${this.deps.hostId}/${slot}`;
  }

  get tickEveryMs(): number {
    return Math.max(100, Math.min(1000, Math.floor(this.deps.ttlMs / 4)));
  }

  start(): Promise<void> {
    this.timer = setInterval(() => void this.tick(), this.tickEveryMs);
    this.timer.unref();
    return this.tick();
  }

  /** Where an instance runs now, from its claim. */
  async ownerOf(instanceKey: string): Promise<Owner | undefined> {
    return parseOwner(await this.deps.redis.get(this.deps.keys.placement(instanceKey)));
  }

  /** One pass; a pass asked for while one runs runs once more after it. Never rejects. */
  tick(): Promise<void> {
    if (this.passing) {
      this.again = true;
      return this.passing;
    }
    this.passing = (async () => {
      do {
        this.again = false;
        await this.pass().then(
          () => {
            if (this.failingSince !== undefined) this.deps.log.info({ failedForMs: Date.now() - this.failingSince }, 'placement passes work again');
            this.failingSince = undefined;
          },
          (err: unknown) => {
            if (this.failingSince === undefined) this.deps.log.warn({ err }, 'placement pass failed: the numbers keep running here, claims are renewed once Redis answers');
            this.failingSince ??= Date.now();
          },
        );
      } while (this.again && !this.draining);
    })().finally(() => {
      this.passing = undefined;
    });
    return this.passing;
  }

  private async pass(): Promise<void> {
    if (this.draining) return;
    const { redis, keys, hostId, local } = this.deps;
    const running = await this.deps.running();
    const wanted = new Set(running);
    const here = new Set(local.localKeys());

    // Stopped or removed: stop it here and free its claim.
    for (const key of here) {
      if (wanted.has(key)) continue;
      local.unassignLocal(key);
      here.delete(key);
      await RELEASE.run(redis, [keys.placement(key)], [`${hostId}/`]);
    }

    const owners = new Map<string, Owner | undefined>();
    const values = running.length === 0 ? [] : await redis.mget(...running.map((k) => keys.placement(k)));
    running.forEach((k, i) => owners.set(k, parseOwner(values[i])));

    // Renew every claim of this host, and learn which ones it lost.
    const mine = running.filter((k) => owners.get(k)?.hostId === hostId && !this.releasing.has(k));
    if (mine.length > 0) {
      const kept = await RENEW.run(redis, mine.map((k) => keys.placement(k)), [String(this.deps.ttlMs), ...mine.map((k) => this.value(owners.get(k)!.slot))]);
      mine.forEach((k, i) => {
        if (kept[i] !== 1) owners.set(k, undefined);
      });
    }
    for (const key of here) {
      const owner = owners.get(key);
      if (owner?.hostId === hostId) continue;
      // Its claim expired (Redis was away longer than the TTL) and nobody took it: take it again.
      const slot = local.slotOf(key) ?? local.pickSlot();
      if (!owner && (await this.claim(key, slot))) {
        owners.set(key, { hostId, slot });
        continue;
      }
      this.deps.log.warn({ instanceId: key, owner: owner?.hostId ?? 'nobody' }, 'placement lost to another host: stopping the instance here');
      local.unassignLocal(key);
      here.delete(key);
    }
    // Claims of this host not running here (this host restarted): run them.
    let started = 0;
    for (const key of running) {
      const owner = owners.get(key);
      if (owner?.hostId !== hostId || here.has(key) || this.releasing.has(key)) continue;
      const slot = local.pickSlot();
      if ((await ADOPT.run(redis, [keys.placement(key)], [`${hostId}/`, this.value(slot), String(this.deps.ttlMs)])) !== 1) {
        owners.set(key, undefined);
        continue;
      }
      local.assignLocal(key, slot, started++ * this.deps.staggerMs);
      owners.set(key, { hostId, slot });
      here.add(key);
    }

    const live = (await this.deps.liveHosts()).filter((h) => !h.draining).map((h) => h.hostId);
    if (!live.includes(hostId)) live.push(hostId);
    const loads = new Map(live.map((h) => [h, 0]));
    for (const o of owners.values()) if (o && loads.has(o.hostId)) loads.set(o.hostId, loads.get(o.hostId)! + 1);
    const quotas = quotasFor(loads, running.length);

    // Free numbers, allotted the same way by every host that sees the same
    // loads: hosts in id order, each its quota's deficit, the list in order.
    // What no host's deficit covers (views a moment apart) goes to the least loaded.
    const free = running.filter((k) => !owners.get(k));
    let cursor = 0;
    let mineFree: string[] = [];
    for (const h of [...live].sort()) {
      const deficit = Math.max(0, quotas.get(h)! - loads.get(h)!);
      if (h === hostId) mineFree = free.slice(cursor, cursor + deficit);
      cursor += deficit;
    }
    const minLoad = () => Math.min(...loads.values());
    for (const key of [...mineFree, ...free.slice(cursor)]) {
      const load = loads.get(hostId)!;
      if (!mineFree.includes(key) && load > minLoad()) break;
      const slot = local.pickSlot();
      if (!(await this.claim(key, slot))) continue;
      local.assignLocal(key, slot, started++ * this.deps.staggerMs);
      loads.set(hostId, load + 1);
    }

    // Above its quota while another host is below its own: hand one number over.
    const load = loads.get(hostId)!;
    const below = [...loads].some(([h, n]) => h !== hostId && n < quotas.get(h)!);
    if (live.length > 1 && load > quotas.get(hostId)! && below && Date.now() - this.lastHandOverMs >= this.deps.spacingMs) {
      const key = [...here].filter((k) => !this.releasing.has(k)).sort().pop();
      if (key) {
        this.lastHandOverMs = Date.now();
        this.handOver(key).catch((err: unknown) => this.deps.log.warn({ err, instanceId: key }, 'hand-over interrupted: the claim expires and another host takes the number'));
      }
    }
  }

  private async claim(instanceKey: string, slot: number): Promise<boolean> {
    return (await this.deps.redis.set(this.deps.keys.placement(instanceKey), this.value(slot), 'PX', this.deps.ttlMs, 'NX')) === 'OK';
  }

  /** Stops the instance here, waits for its session to free the lease, then frees the claim for another host. */
  private async handOver(instanceKey: string): Promise<void> {
    this.releasing.add(instanceKey);
    try {
      this.deps.log.info({ instanceId: instanceKey }, 'handing a number over to a host below its share');
      this.deps.local.unassignLocal(instanceKey);
      await this.leaseFreed(instanceKey);
      await RELEASE.run(this.deps.redis, [this.deps.keys.placement(instanceKey)], [`${this.deps.hostId}/`]);
      this.deps.nudge();
    } finally {
      this.releasing.delete(instanceKey);
    }
  }

  /** Waits (up to one TTL) until no session of this host holds the instance's lease. */
  private async leaseFreed(instanceKey: string): Promise<void> {
    const until = Date.now() + this.deps.ttlMs;
    while (Date.now() < until) {
      const holder = await this.deps.redis.get(this.deps.keys.lease(instanceKey));
      if (!holder?.startsWith(`${this.deps.hostId}:`)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Stops taking numbers (a host stopping). `stopped` closes this host's
   * sessions; then every claim of this host is freed and the others told.
   */
  async drain(stopped: () => Promise<void>): Promise<void> {
    this.draining = true;
    if (this.timer) clearInterval(this.timer);
    await this.passing;
    await stopped();
    const all = await this.deps.running();
    for (const key of all) await RELEASE.run(this.deps.redis, [this.deps.keys.placement(key)], [`${this.deps.hostId}/`]);
    this.deps.nudge();
  }
}
