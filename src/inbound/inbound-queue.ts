/** The jobs that drain inbound chats: one per chat and generation of its flag, in the worker process's queue, no bodies. */
import type { Queue } from 'bullmq';
import { chatJobId } from '../redis/keys.js';
import { addJobs, type InstanceJobData } from '../redis/instance-jobs.js';
import type { ScheduledChat } from './inbound-store.js';

/** The data of an inbound drain job: which instance's chat list to drain, for which generation of its flag (none: `'1'`, an older version's flag). */
export interface ChatJobData extends InstanceJobData {
  chatId: string;
  generation?: string;
}

/**
 * Adds the drain job of each chat's flag generation to the worker process's
 * inbound queue; BullMQ ignores ids that already have a job. Jobs never
 * carry message bodies: those stay in the chat lists of `InboundStore`.
 */
export async function scheduleChats(queue: Queue<ChatJobData>, instanceKey: string, chats: readonly ScheduledChat[]): Promise<void> {
  const jobs = chats.map(({ chatId, generation }) => ({ name: 'chat', data: { instanceKey, chatId, generation }, opts: { jobId: chatJobId(instanceKey, chatId, generation) } }));
  await addJobs(queue, jobs);
}
