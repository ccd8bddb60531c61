import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { outboundQueueName, type RedisKeys } from '../queue/keys.js';
import type { OutboundJob } from './inbox-events.js';

export function createOutboundQueue(connection: Redis, keys: RedisKeys, instanceKey: string): Queue<OutboundJob> {
  return new Queue<OutboundJob>(outboundQueueName(instanceKey), {
    connection,
    prefix: keys.bullPrefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 8, backoff: { type: 'exponential', delay: 1000 } },
  });
}

/**
 * Queues an agent message (or its deletion). The job id is the Chatwoot
 * message id, so a repeated webhook while the job waits adds nothing; after
 * it ran, the per-part records make a repeat send nothing.
 */
export async function enqueueOutbound(queue: Queue<OutboundJob>, job: OutboundJob): Promise<void> {
  await queue.add(job.kind, job, { jobId: `${job.kind}.${job.messageId}` });
}
