import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ChatwootClientLike } from '../chatwoot/types.js';
import { coerceError } from '../lib/errors.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import type { OutboundJob } from '../outbound/inbox-events.js';
import { createOutboundQueue } from '../outbound/outbound-queue.js';
import type { RedisKeys } from '../queue/keys.js';

/**
 * The primary's side of outbound: one BullMQ queue handle per instance for
 * the inbox webhook to queue into, and each inbox's webhook signing secret,
 * read through the API (administrator token) ahead of time so verifying a
 * webhook never waits on Chatwoot.
 */
export class OutboundGateway {
  private readonly queues = new Map<string, Queue<OutboundJob>>();
  private readonly secrets = new Map<string, string>();

  constructor(private readonly o: { redis: Redis; keys: RedisKeys; chatwoot: ChatwootClientLike; log: Logger }) {}

  queue(instanceKey: string): Queue<OutboundJob> {
    let q = this.queues.get(instanceKey);
    if (!q) {
      q = createOutboundQueue(this.o.redis, this.o.keys, instanceKey);
      this.queues.set(instanceKey, q);
    }
    return q;
  }

  inboxSecret(instanceKey: string): string | undefined {
    return this.secrets.get(instanceKey);
  }

  /** Reads the inbox's signing secret; without one (older Chatwoot, or an agent token) only the token guards it. */
  async learnSecret(instanceKey: string): Promise<void> {
    const ref = parseInstanceKey(instanceKey);
    if (!ref) return;
    try {
      const inbox = await this.o.chatwoot.getInbox(ref.accountId, ref.inboxId);
      if (inbox.secret) this.secrets.set(instanceKey, inbox.secret);
      else this.o.log.info({ instanceId: instanceKey }, 'no inbox secret visible to this token: inbox webhooks are checked by token only');
    } catch (err) {
      this.o.log.warn({ err: coerceError(err), instanceId: instanceKey }, 'could not read the inbox secret; inbox webhooks are checked by token only');
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
