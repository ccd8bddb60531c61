/** The BullMQ queue of one instance's inbound chats (one job per chat, no bodies). */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { chatJobId, inboundQueueName, type RedisKeys } from '../redis/keys.js';

/** The data of an inbound drain job: which chat's list to drain. */
export interface ChatJobData {
  chatId: string;
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

/** Adds the drain job of each chat; BullMQ ignores ids that already have a job. */
export async function scheduleChats(queue: Queue<ChatJobData>, chatIds: readonly string[]): Promise<void> {
  if (chatIds.length === 0) return;
  await queue.addBulk(chatIds.map((chatId) => ({ name: 'chat', data: { chatId }, opts: { jobId: chatJobId(chatId) } })));
}
