import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { outboundQueueName, RETENTION_S, type RedisKeys } from '../queue/keys.js';
import type { OutboundJob } from './inbox-events.js';

export function createOutboundQueue(connection: Redis, keys: RedisKeys, instanceKey: string): Queue<OutboundJob> {
  return new Queue<OutboundJob>(outboundQueueName(instanceKey), {
    connection,
    prefix: keys.bullPrefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 8, backoff: { type: 'exponential', delay: 1000 } },
  });
}

/**
 * Queues an agent message (or its deletion) with the next position in its
 * conversation's order. The job id is the Chatwoot message id, so a repeated
 * webhook while the job waits adds nothing; after it ran, the per-part
 * records make a repeat send nothing.
 */
export async function enqueueOutbound(queue: Queue<OutboundJob>, job: OutboundJob, order: { redis: Redis; keys: RedisKeys; instanceKey: string }): Promise<void> {
  const jobId = `${job.kind}.${job.messageId}`;
  // A job still waiting for this message makes a repeat a no-op; no sequence number is spent on it.
  if (await queue.getJob(jobId)) return;
  const seqKey = order.keys.outSeq(order.instanceKey, job.conversationId);
  const [[, seq]] = (await order.redis.multi().incr(seqKey).expire(seqKey, RETENTION_S).exec()) as [[Error | null, number], [Error | null, number]];
  await queue.add(job.kind, { ...job, seq }, { jobId });
}
