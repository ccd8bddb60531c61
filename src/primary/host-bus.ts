/** What hosts tell each other at once, over Redis pub/sub: "look at placement now", "this number linked". */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';

type BusMessage = { from: string; kind: 'nudge' } | { from: string; kind: 'opened'; instanceKey: string };

export interface HostBusEvents {
  /** Another host freed or created a number: placement should look again. */
  nudge: [];
  /** A number linked or reconnected on some host (this one included). */
  opened: [instanceKey: string];
}

/**
 * A pub/sub channel every host listens on. Only hints travel here: a host
 * that misses one (Redis away) catches up at its next placement tick.
 */
export class HostBus extends EventEmitter<HostBusEvents> {
  private readonly sub: Redis;

  constructor(private readonly deps: { redis: Redis; keys: RedisKeys; hostId: string; log: Logger }) {
    super();
    this.sub = deps.redis.duplicate({ maxRetriesPerRequest: null, connectionName: `ponte-bus:${deps.hostId}` });
    this.sub.on('error', (err) => deps.log.debug({ err }, 'redis connection error (host bus)'));
    this.sub.on('message', (_channel: string, raw: string) => {
      const m = JSON.parse(raw) as BusMessage;
      if (m.kind === 'opened') this.emit('opened', m.instanceKey);
      else if (m.from !== deps.hostId) this.emit('nudge');
    });
  }

  async start(): Promise<void> {
    await this.sub.subscribe(this.deps.keys.hostEvents);
  }

  nudge(): void {
    this.publish({ from: this.deps.hostId, kind: 'nudge' });
  }

  opened(instanceKey: string): void {
    this.publish({ from: this.deps.hostId, kind: 'opened', instanceKey });
  }

  private publish(m: BusMessage): void {
    this.deps.redis.publish(this.deps.keys.hostEvents, JSON.stringify(m)).catch((err: unknown) => this.deps.log.debug({ err }, 'could not publish to the other hosts'));
  }

  async close(): Promise<void> {
    await this.sub.quit().catch(() => undefined);
  }
}
