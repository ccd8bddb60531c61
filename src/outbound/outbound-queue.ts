/** The BullMQ queue of one instance's outbound conversations, and how an agent message is queued into it. */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { conversationJobId, outboundQueueName, type RedisKeys } from '../redis/keys.js';
import type { OutboundJob } from './inbox-events.js';
import type { OutboundEvent, OutboundStore, ScheduledConversation } from './outbound-store.js';

/** The data of an outbound drain job: which conversation's list to drain, for which generation of its flag (none: `'1'`, an older version's flag). */
export interface ConversationJobData {
  conversationId: number;
  generation?: string;
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

/** Adds the drain job of each conversation's flag generation; BullMQ ignores ids that already have a job. */
export async function scheduleConversations(queue: Queue<ConversationJobData>, conversations: readonly ScheduledConversation[]): Promise<void> {
  const jobs = conversations.map(({ conversationId, generation }) => ({ name: 'conversation', data: { conversationId, generation }, opts: { jobId: conversationJobId(conversationId, generation) } }));
  // One job (the usual case) is one script; a bulk add goes through an ioredis pipeline, which costs more to build.
  if (jobs.length === 1) await queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
  else if (jobs.length > 1) await queue.addBulk(jobs);
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
  const { needsJob } = await store.enqueue(outboundEvent(job));
  if (needsJob) await scheduleConversations(queue, [needsJob]);
}
