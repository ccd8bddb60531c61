/** The BullMQ queue of one instance's inbound chats (one job per chat, no bodies). */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { chatJobId, inboundQueueName, type RedisKeys } from '../redis/keys.js';
import type { ScheduledChat } from './inbound-store.js';

/** The data of an inbound drain job: which chat's list to drain, for which generation of its flag (none: `'1'`, an older version's flag). */
export interface ChatJobData {
  chatId: string;
  generation?: string;
}

/**
 * The BullMQ queue of one instance's inbound chats. Jobs are deduplicated by
 * chat (`chatJobId`), removed when done, and never carry message bodies:
 * those stay in the chat lists of `InboundStore`.
 */
export function createInboundQueue(connection: Redis, keys: RedisKeys, instanceKey: string): Queue<ChatJobData> {
  const queue = new Queue<ChatJobData>(inboundQueueName(instanceKey), {
    connection,
    prefix: keys.bullPrefix,
    defaultJobOptions: {
      removeOnComplete: true,
      removeOnFail: true,
      // A drain job only fails on an unexpected error (Redis trouble, a bug):
      // message failures are handled inside it. Retry those a few times; the
      // periodic sweep re-adds the chat's job after that.
      attempts: 5,
      backoff: { type: 'exponential', delay: 1000 },
    },
  });
  return queue;
}

/** Adds the drain job of each chat's flag generation; BullMQ ignores ids that already have a job. */
export async function scheduleChats(queue: Queue<ChatJobData>, chats: readonly ScheduledChat[]): Promise<void> {
  const jobs = chats.map(({ chatId, generation }) => ({ name: 'chat', data: { chatId, generation }, opts: { jobId: chatJobId(chatId, generation) } }));
  // One job (the usual case) is one script; a bulk add goes through an ioredis pipeline, which costs more to build.
  if (jobs.length === 1) await queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
  else if (jobs.length > 1) await queue.addBulk(jobs);
}
