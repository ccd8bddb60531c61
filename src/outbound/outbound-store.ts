/**
 * Per-conversation ordered storage of one instance's outbound events in Redis.
 *
 * The events are agent messages, deletes and updates: the mirror image of the inbound store.
 */
import type { Redis } from 'ioredis';
import { RETENTION_S, type RedisKeys } from '../redis/keys.js';
import { DRAIN_FLAG_FN } from '../redis/drain-flag-lua.js';
import { LuaScript } from '../redis/scripts.js';
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
 * the conversation has a drain job) or the new generation of the flag
 * (appended; add the job of that generation).
 * ARGV: base, event id ('' for none), conversation id, event, ttl.
 */
const ENQUEUE = new LuaScript<number | string>('OutEnqueue', `${DRAIN_FLAG_FN}
local base = ARGV[1]
if ARGV[2] ~= '' then
  if not redis.call('SET', base .. 'seen:' .. ARGV[2], '1', 'NX', 'EX', tonumber(ARGV[5])) then return 0 end
end
redis.call('RPUSH', base .. 'conv:' .. ARGV[3], ARGV[4])
redis.call('SADD', base .. 'pending', ARGV[3])
return raise_flag(base, ARGV[3]) or 1
`);

/** Removes the head if it is still the event worked on, and forgets its attempts. ARGV: base, conversation id, raw head, attempts field. */
const ACK = new LuaScript('OutAck', `
local list = ARGV[1] .. 'conv:' .. ARGV[2]
if redis.call('LINDEX', list, 0) == ARGV[3] then redis.call('LPOP', list) end
redis.call('HDEL', ARGV[1] .. 'attempts', ARGV[4])
return 1
`);

/**
 * The head for the job of one generation of the flag: 0 when the flag is not
 * that generation (another job drains the conversation), false when the list
 * is empty (the flag lowered in the same step, so an event appended after it
 * raises a new generation and gets a job of its own), else the raw head.
 * ARGV: base, conversation id, generation.
 */
const NEXT = new LuaScript<string | number | null>('OutNext', `
local base = ARGV[1]
if redis.call('GET', base .. 'sched:' .. ARGV[2]) ~= ARGV[3] then return 0 end
local raw = redis.call('LINDEX', base .. 'conv:' .. ARGV[2], 0)
if raw then return raw end
redis.call('DEL', base .. 'sched:' .. ARGV[2])
redis.call('SREM', base .. 'pending', ARGV[2])
return false
`);

/** Every conversation holding events with its flag's generation (raised where it was missing), as a flat list. ARGV: base. */
const SCHEDULED = new LuaScript<string[]>('OutScheduled', `${DRAIN_FLAG_FN}
return schedule_pending(ARGV[1])
`);

/** A conversation to drain and the generation of its flag, which the drain job's id carries. */
export interface ScheduledConversation {
  conversationId: number;
  generation: string;
}

export interface OutboundHead {
  raw: string;
  event: OutboundEvent;
}

/**
 * BullMQ's open-source edition has no job groups, so order within a
 * conversation is kept here, as for inbound (DESIGN.md, Decisions 5): every
 * event is appended to its conversation's list by one script (check and set
 * in one step: two copies of a webhook arriving together add one event), and
 * one BullMQ job per conversation drains it head first. `scheduled` lists
 * every conversation holding events, so a job lost between the script and
 * BullMQ is re-added by the consumer's sweep. Each raise of a conversation's
 * flag is a new generation carried by its job's id, as for inbound (see
 * `InboundStore`): a job still finishing never swallows the next one.
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

  /** Whether the event was appended (false: a repeat), and the drain job to add when the conversation had none. */
  async enqueue(event: OutboundEvent): Promise<{ appended: boolean; needsJob?: ScheduledConversation }> {
    const conversationId = event.job.conversationId;
    const r = await ENQUEUE.run(this.redis, [], [this.base, event.id ?? '', String(conversationId), JSON.stringify(event), String(RETENTION_S)]);
    if (typeof r === 'string') return { appended: true, needsJob: { conversationId, generation: r } };
    return { appended: r === 1 };
  }

  /**
   * The conversation's head for the drain job of `generation`; `undefined`
   * once the conversation is empty (its flag lowered) or when `generation` is
   * no longer its flag's (another job drains it).
   */
  async next(conversationId: number, generation: string): Promise<OutboundHead | undefined> {
    const raw = await NEXT.run(this.redis, [], [this.base, String(conversationId), generation]);
    return typeof raw === 'string' ? { raw, event: JSON.parse(raw) as OutboundEvent } : undefined;
  }

  async ack(conversationId: number, head: OutboundHead): Promise<void> {
    await ACK.run(this.redis, [], [this.base, String(conversationId), head.raw, attemptsField(head.event)]);
  }

  /** Counts a failure of the head event itself; returns the attempts so far. */
  async recordAttempt(event: OutboundEvent): Promise<number> {
    return this.redis.hincrby(`${this.base}attempts`, attemptsField(event), 1);
  }

  async pendingConversations(): Promise<number[]> {
    return (await this.redis.smembers(`${this.base}pending`)).map(Number).filter((n) => Number.isSafeInteger(n));
  }

  /** Every conversation that holds events, with its flag's generation (raised where it was missing): the drain jobs there should be. */
  async scheduled(): Promise<ScheduledConversation[]> {
    const flat = await SCHEDULED.run(this.redis, [], [this.base]);
    const out: ScheduledConversation[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const conversationId = Number(flat[i]);
      if (Number.isSafeInteger(conversationId)) out.push({ conversationId, generation: flat[i + 1]! });
    }
    return out;
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
