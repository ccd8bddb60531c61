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
 * drain job to the outbound queue of the worker running the instance, on
 * this host or another (one queue per host and slot, made on first use and
 * closed at shutdown).
 */
export class OutboundGateway {
  private readonly instances = new Map<string, InstanceOutbound>();
  private readonly queues = new Map<string, Queue<ConversationJobData>>();

  constructor(
    private readonly deps: {
      redis: Redis;
      keys: RedisKeys;
      /** The host and worker slot running the instance, this host's or another's (none while it moves between hosts). */
      ownerOf(instanceKey: string): Promise<{ hostId: string; slot: number } | undefined>;
    },
  ) {}

  private of(instanceKey: string): InstanceOutbound {
    let i = this.instances.get(instanceKey);
    if (!i) {
      i = { store: new OutboundStore(this.deps.redis, this.deps.keys, instanceKey), records: new OutboundRecords(this.deps.redis, this.deps.keys, instanceKey) };
      this.instances.set(instanceKey, i);
    }
    return i;
  }

  /** The queue of the worker running the instance; none while nobody runs it (its next owner's start finds the message in its list). */
  private async queueOf(instanceKey: string): Promise<Queue<ConversationJobData> | undefined> {
    const owner = await this.deps.ownerOf(instanceKey);
    if (!owner) return undefined;
    const name = outboundQueueName(owner.hostId, owner.slot);
    let q = this.queues.get(name);
    if (!q) {
      q = instanceJobsQueue<ConversationJobData>(this.deps.redis, this.deps.keys.bullPrefix, name);
      this.queues.set(name, q);
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
    await enqueueOutbound(i.store, await this.queueOf(instanceKey), job);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
