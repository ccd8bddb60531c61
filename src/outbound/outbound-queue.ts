/** The BullMQ queue of one instance's outbound conversations, and how an agent message is queued into it. */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { conversationJobId, outboundQueueName, type RedisKeys } from '../redis/keys.js';
import type { OutboundJob } from './inbox-events.js';
import type { OutboundEvent, OutboundStore } from './outbound-store.js';

/** The data of an outbound drain job: which conversation's list to drain. */
export interface ConversationJobData {
  conversationId: number;
}

/**
 * Jobs are deduplicated by conversation (`conversationJobId`), removed when
 * done, and never carry message bodies: those stay in the lists of
 * `OutboundStore`. A drain job fails only on an unexpected error (Redis
 * trouble): a few attempts, then the consumer's sweep re-adds it.
 */
export function createOutboundQueue(connection: Redis, keys: RedisKeys, instanceKey: string): Queue<ConversationJobData> {
  return new Queue<ConversationJobData>(outboundQueueName(instanceKey), {
    connection,
    prefix: keys.bullPrefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'exponential', delay: 1000 } },
  });
}

/** Adds the drain job of each conversation; BullMQ ignores ids that already have a job. */
export async function scheduleConversations(queue: Queue<ConversationJobData>, conversationIds: readonly number[]): Promise<void> {
  if (conversationIds.length === 0) return;
  await queue.addBulk(conversationIds.map((conversationId) => ({ name: 'conversation', data: { conversationId }, opts: { jobId: conversationJobId(conversationId) } })));
}

/** The event an inbox webhook decision becomes: sends and deletes are deduplicated by Chatwoot message id, updates are not. */
export function outboundEvent(job: OutboundJob): OutboundEvent {
  return job.kind === 'update' ? { job } : { id: `${job.kind}.${job.messageId}`, job };
}

/**
 * Queues an agent message, its delete or an update behind the earlier events
 * of its conversation. A repeated webhook adds nothing (one script checks and
 * appends), so two copies arriving together never stall the conversation.
 */
export async function enqueueOutbound(store: OutboundStore, queue: Queue<ConversationJobData>, job: OutboundJob): Promise<void> {
  if ((await store.enqueue(outboundEvent(job))) === 2) await scheduleConversations(queue, [job.conversationId]);
}
