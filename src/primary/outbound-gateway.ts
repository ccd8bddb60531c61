/** The primary's side of outbound: queues agent messages from the inbox webhook into each instance's conversations. */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { OutboundJob } from '../outbound/inbox-events.js';
import { type ConversationJobData, enqueueOutbound } from '../outbound/outbound-queue.js';
import { OutboundRecords } from '../outbound/outbound-records.js';
import { OutboundStore } from '../outbound/outbound-store.js';
import { instanceJobsQueue } from '../redis/instance-jobs.js';
import { outboundQueueName, type RedisKeys } from '../redis/keys.js';

interface InstanceOutbound {
  store: OutboundStore;
  records: OutboundRecords;
}

/**
 * Stores each agent message in its instance's conversation list and adds the
 * drain job to the outbound queue of the worker slot running the instance
 * (one queue per slot, made on first use and closed at shutdown).
 */
export class OutboundGateway {
  private readonly instances = new Map<string, InstanceOutbound>();
  private readonly queues = new Map<number, Queue<ConversationJobData>>();

  constructor(private readonly deps: { redis: Redis; keys: RedisKeys; slotOf(instanceKey: string): number | undefined }) {}

  private of(instanceKey: string): InstanceOutbound {
    let i = this.instances.get(instanceKey);
    if (!i) {
      i = { store: new OutboundStore(this.deps.redis, this.deps.keys, instanceKey), records: new OutboundRecords(this.deps.redis, this.deps.keys, instanceKey) };
      this.instances.set(instanceKey, i);
    }
    return i;
  }

  private queueOf(instanceKey: string): Queue<ConversationJobData> | undefined {
    const slot = this.deps.slotOf(instanceKey);
    if (slot === undefined) return undefined;
    let q = this.queues.get(slot);
    if (!q) {
      q = instanceJobsQueue<ConversationJobData>(this.deps.redis, this.deps.keys.bullPrefix, outboundQueueName(slot));
      this.queues.set(slot, q);
    }
    return q;
  }

  /**
   * Queues an agent message, its delete or an update. Chatwoot announces
   * every status Ponte reports with a `message_updated`: one for a message
   * WhatsApp accepted changes nothing and is not queued at all. Idempotent.
   */
  async enqueue(instanceKey: string, job: OutboundJob): Promise<void> {
    const i = this.of(instanceKey);
    if (job.kind === 'update' && (await i.records.accepted(job.messageId))) return;
    await enqueueOutbound(i.store, this.queueOf(instanceKey), job);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
