/** The jobs that drain outbound conversations, in the owning worker process's queue, and how an agent message is queued. */
import type { Queue } from 'bullmq';
import { conversationJobId } from '../redis/keys.js';
import { addJobs, type InstanceJobData } from '../redis/instance-jobs.js';
import type { OutboundJob } from './inbox-events.js';
import type { OutboundEvent, OutboundStore, ScheduledConversation } from './outbound-store.js';

/** The data of an outbound drain job: which instance's conversation list to drain, for which generation of its flag (none: `'1'`, an older version's flag). */
export interface ConversationJobData extends InstanceJobData {
  conversationId: number;
  generation?: string;
}

/**
 * Adds the drain job of each conversation's flag generation to a worker
 * process's outbound queue; BullMQ ignores ids that already have a job. Jobs
 * never carry message bodies: those stay in the lists of `OutboundStore`.
 */
export async function scheduleConversations(queue: Queue<ConversationJobData>, instanceKey: string, conversations: readonly ScheduledConversation[]): Promise<void> {
  const jobs = conversations.map(({ conversationId, generation }) => ({
    name: 'conversation',
    data: { instanceKey, conversationId, generation },
    opts: { jobId: conversationJobId(instanceKey, conversationId, generation) },
  }));
  await addJobs(queue, jobs);
}

/** The event an inbox webhook decision becomes: sends and deletes are deduplicated by Chatwoot message id, updates are not. */
export function outboundEvent(job: OutboundJob): OutboundEvent {
  return job.kind === 'update' ? { job } : { id: `${job.kind}.${job.messageId}`, job };
}

/**
 * Queues an agent message, its delete or an update behind the earlier events
 * of its conversation. A repeated webhook adds nothing (one script checks and
 * appends), so two copies arriving together never stall the conversation.
 * `queue` is the outbound queue of the worker process running the instance;
 * without one (the instance runs nowhere now) the event waits in its list
 * and the instance's sweep schedules it when it starts.
 */
export async function enqueueOutbound(store: OutboundStore, queue: Queue<ConversationJobData> | undefined, job: OutboundJob): Promise<void> {
  const { needsJob } = await store.enqueue(outboundEvent(job));
  if (needsJob && queue) await scheduleConversations(queue, store.instanceKey, [needsJob]);
}
