/** Puts inbound events into their instance's Redis chat lists, for any instance: the apply step of a worker's journal. */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { InboundEvent } from '../model/inbound.js';
import type { ChatJobData } from '../inbound/inbound-queue.js';
import { InboundProducer } from '../inbound/inbound-producer.js';
import { InboundStore } from '../inbound/inbound-store.js';
import type { RedisKeys } from '../redis/keys.js';
import { chatAliases } from '../inbound/inbound-pipeline.js';

/**
 * One producer per instance, made on first use, adding jobs to this worker
 * process's inbound queue. Idempotent per event (the store drops a WhatsApp
 * id it has seen), so a journal may replay entries, including entries of an
 * instance this worker no longer runs (a journal adopted from a worker that
 * died): their job does nothing here and the instance's owner finds the
 * chat in its sweep.
 */
export class InboundIngest {
  private readonly producers = new Map<string, InboundProducer>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly queue: Queue<ChatJobData>,
  ) {}

  async ingest(event: InboundEvent): Promise<void> {
    let p = this.producers.get(event.instanceKey);
    if (!p) {
      const store = new InboundStore({ redis: this.redis, keys: this.keys, instanceKey: event.instanceKey });
      p = new InboundProducer(store, this.queue, chatAliases);
      this.producers.set(event.instanceKey, p);
    }
    await p.enqueue(event.message, event.receivedAtMs);
  }
}
