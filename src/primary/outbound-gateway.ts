/** The primary's handles on each instance's outbound queue, for the inbox webhook to queue agent messages into. */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { OutboundJob } from '../outbound/inbox-events.js';
import { createOutboundQueue } from '../outbound/outbound-queue.js';
import type { RedisKeys } from '../queue/keys.js';

/** One BullMQ queue handle per instance, made on first use and closed at shutdown. */
export class OutboundGateway {
  private readonly queues = new Map<string, Queue<OutboundJob>>();

  constructor(private readonly o: { redis: Redis; keys: RedisKeys }) {}

  queue(instanceKey: string): Queue<OutboundJob> {
    let q = this.queues.get(instanceKey);
    if (!q) {
      q = createOutboundQueue(this.o.redis, this.o.keys, instanceKey);
      this.queues.set(instanceKey, q);
    }
    return q;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
