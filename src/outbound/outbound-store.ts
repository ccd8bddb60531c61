/**
 * Per-conversation ordered storage of one instance's outbound events in Redis.
 *
 * The events are agent messages, deletes and updates: the mirror image of the inbound store.
 */
import type { Redis } from 'ioredis';
import { RETENTION_S, type RedisKeys } from '../redis/keys.js';
import type { OutboundJob } from './inbox-events.js';

/**
 * One event of a conversation: `id` deduplicates it (`send.<message>`,
 * `delete.<message>`); updates carry no id: each is looked at, and only a
 * Retry of a message WhatsApp never accepted does anything.
 */
export interface OutboundEvent {
  id?: string;
  job: OutboundJob;
}

/**
 * Appends an event to its conversation unless its id was seen, and raises
 * the conversation's "scheduled" flag. Returns 0 (a repeat), 1 (appended;
 * the conversation has a drain job) or 2 (appended; add its job).
 * ARGV: base, event id ('' for none), conversation id, event, ttl.
 */
const ENQUEUE = `
local base = ARGV[1]
if ARGV[2] ~= '' then
  if not redis.call('SET', base .. 'seen:' .. ARGV[2], '1', 'NX', 'EX', tonumber(ARGV[5])) then return 0 end
end
redis.call('RPUSH', base .. 'conv:' .. ARGV[3], ARGV[4])
redis.call('SADD', base .. 'pending', ARGV[3])
if redis.call('SET', base .. 'sched:' .. ARGV[3], '1', 'NX') then return 2 end
return 1
`;

/** Removes the head if it is still the event worked on, and forgets its attempts. ARGV: base, conversation id, raw head, attempts field. */
const ACK = `
local list = ARGV[1] .. 'conv:' .. ARGV[2]
if redis.call('LINDEX', list, 0) == ARGV[3] then redis.call('LPOP', list) end
redis.call('HDEL', ARGV[1] .. 'attempts', ARGV[4])
return 1
`;

/** Lowers the flag only when the list is empty (an event appended meanwhile keeps the job going). ARGV: base, conversation id. */
const FINISH = `
local base = ARGV[1]
if redis.call('LLEN', base .. 'conv:' .. ARGV[2]) > 0 then return 0 end
redis.call('DEL', base .. 'sched:' .. ARGV[2])
redis.call('SREM', base .. 'pending', ARGV[2])
return 1
`;

export interface OutboundHead {
  raw: string;
  event: OutboundEvent;
}

/**
 * BullMQ's open-source edition has no job groups, so order within a
 * conversation is kept here, as for inbound (DESIGN.md, Decisions 5): every
 * event is appended to its conversation's list by one script (check and set
 * in one step: two copies of a webhook arriving together add one event), and
 * one BullMQ job per conversation drains it head first. `pendingConversations`
 * lists every conversation holding events, so a job lost between the script
 * and BullMQ is re-added by the consumer's sweep.
 */
export class OutboundStore {
  private readonly base: string;

  constructor(
    private readonly redis: Redis,
    keys: RedisKeys,
    readonly instanceKey: string,
  ) {
    this.base = keys.outbound(instanceKey);
  }

  /** 0: a repeat, nothing added; 1: appended; 2: appended, and the conversation needs a drain job. */
  async enqueue(event: OutboundEvent): Promise<0 | 1 | 2> {
    const r = await this.redis.eval(ENQUEUE, 0, this.base, event.id ?? '', String(event.job.conversationId), JSON.stringify(event), String(RETENTION_S));
    return r === 2 ? 2 : r === 1 ? 1 : 0;
  }

  async head(conversationId: number): Promise<OutboundHead | undefined> {
    const raw = await this.redis.lindex(`${this.base}conv:${conversationId}`, 0);
    return raw === null ? undefined : { raw, event: JSON.parse(raw) as OutboundEvent };
  }

  async ack(conversationId: number, head: OutboundHead): Promise<void> {
    await this.redis.eval(ACK, 0, this.base, String(conversationId), head.raw, attemptsField(head.event));
  }

  async finish(conversationId: number): Promise<boolean> {
    return (await this.redis.eval(FINISH, 0, this.base, String(conversationId))) === 1;
  }

  /** Counts a failure of the head event itself; returns the attempts so far. */
  async recordAttempt(event: OutboundEvent): Promise<number> {
    return this.redis.hincrby(`${this.base}attempts`, attemptsField(event), 1);
  }

  async pendingConversations(): Promise<number[]> {
    return (await this.redis.smembers(`${this.base}pending`)).map(Number).filter((n) => Number.isSafeInteger(n));
  }

  /** Events waiting, over every conversation. */
  async depth(): Promise<number> {
    const conversations = await this.pendingConversations();
    if (conversations.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const c of conversations) pipeline.llen(`${this.base}conv:${c}`);
    const results = (await pipeline.exec()) ?? [];
    return results.reduce((sum, [, n]) => sum + Number(n ?? 0), 0);
  }
}

function attemptsField(event: OutboundEvent): string {
  return event.id ?? `${event.job.kind}.${event.job.messageId}`;
}
