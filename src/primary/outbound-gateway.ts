/** The primary's side of outbound: queues agent messages from the inbox webhook into each instance's conversations. */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { OutboundJob } from '../outbound/inbox-events.js';
import { type ConversationJobData, createOutboundQueue, enqueueOutbound } from '../outbound/outbound-queue.js';
import { OutboundRecords } from '../outbound/outbound-records.js';
import { OutboundStore } from '../outbound/outbound-store.js';
import type { RedisKeys } from '../redis/keys.js';

interface InstanceOutbound {
  queue: Queue<ConversationJobData>;
  store: OutboundStore;
  records: OutboundRecords;
}

/** One queue handle per instance, made on first use and closed at shutdown. */
export class OutboundGateway {
  private readonly instances = new Map<string, InstanceOutbound>();

  constructor(private readonly deps: { redis: Redis; keys: RedisKeys }) {}

  private of(instanceKey: string): InstanceOutbound {
    let i = this.instances.get(instanceKey);
    if (!i) {
      i = {
        queue: createOutboundQueue(this.deps.redis, this.deps.keys, instanceKey),
        store: new OutboundStore(this.deps.redis, this.deps.keys, instanceKey),
        records: new OutboundRecords(this.deps.redis, this.deps.keys, instanceKey),
      };
      this.instances.set(instanceKey, i);
    }
    return i;
  }

  /**
   * Queues an agent message, its delete or an update. Chatwoot announces
   * every status Ponte reports with a `message_updated`: one for a message
   * WhatsApp accepted changes nothing and is not queued at all. Idempotent.
   */
  async enqueue(instanceKey: string, job: OutboundJob): Promise<void> {
    const i = this.of(instanceKey);
    if (job.kind === 'update' && (await i.records.accepted(job.messageId))) return;
    await enqueueOutbound(i.store, i.queue, job);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.instances.values()].map((i) => i.queue.close()));
  }
}
