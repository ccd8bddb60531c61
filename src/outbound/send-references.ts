/** The send API's idempotency records: what each reference created, and the status of its message from the outbound records. */
import type { Redis } from 'ioredis';
import type { RedisKeys } from '../redis/keys.js';
import type { OutboundJob } from './inbox-events.js';
import { OutboundRecords } from './outbound-records.js';

/** How long a reference is remembered: a repeat within a week sends nothing and answers the same ids. */
export const SEND_REFERENCE_TTL_S = 7 * 24 * 3600;

/** The statuses `GET /api/send/:reference` answers, in the order a message goes through them (`failed` aside). */
export type SendStatus = 'queued' | 'sent' | 'delivered' | 'read' | 'failed';

/** A send API reference: chosen by the caller (an order or appointment id) or generated. */
export const SEND_REFERENCE = /^[A-Za-z0-9._:-]{1,100}$/;

/** What one send API request created in Chatwoot, and the job that sends it on WhatsApp. */
export interface SendRecord {
  conversationId: number;
  messageId: number;
  job: OutboundJob;
}

/** The worker's answer to a `send` call: what the reference created, and whether it existed already. */
export interface SendResult extends SendRecord {
  reference: string;
  /** True when the reference was seen before: nothing was created this time. */
  repeated: boolean;
}

export class SendReferences {
  private readonly records: OutboundRecords;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly instanceKey: string,
  ) {
    this.records = new OutboundRecords(redis, keys, instanceKey);
  }

  private key(reference: string): string {
    return this.keys.sendReference(this.instanceKey, reference);
  }

  async get(reference: string): Promise<SendRecord | undefined> {
    const h = await this.redis.hgetall(this.key(reference));
    if (!h.conversationId || !h.messageId || !h.job) return undefined;
    return { conversationId: Number(h.conversationId), messageId: Number(h.messageId), job: JSON.parse(h.job) as OutboundJob };
  }

  /** Records what a reference created (once: a record already there stays). */
  async save(reference: string, r: SendRecord): Promise<void> {
    const key = this.key(reference);
    await this.redis
      .multi()
      .hsetnx(key, 'conversationId', String(r.conversationId))
      .hsetnx(key, 'messageId', String(r.messageId))
      .hsetnx(key, 'job', JSON.stringify(r.job))
      .expire(key, SEND_REFERENCE_TTL_S)
      .exec();
  }

  /** The status of a message: `queued` until WhatsApp accepted it, then the highest tick; `failed` with the agent-facing reason. */
  async statusOf(messageId: number): Promise<{ status: SendStatus; reason?: string }> {
    const s = await this.records.state(messageId);
    if (s.want === 'failed') return { status: 'failed', ...(s.reason ? { reason: s.reason } : {}) };
    return { status: s.want ?? (s.accepted ? 'sent' : 'queued') };
  }

  /** The status of a reference's message; `undefined` for a reference this instance does not know. */
  async status(reference: string): Promise<{ status: SendStatus; reason?: string; conversationId: number; messageId: number } | undefined> {
    const r = await this.get(reference);
    if (!r) return undefined;
    return { ...(await this.statusOf(r.messageId)), conversationId: r.conversationId, messageId: r.messageId };
  }
}
