/** The last bot question with options in each conversation, kept in Redis for the customer's answer. */
import type { Redis } from 'ioredis';
import type { BotQuestion } from '../model/bot-question.js';
import type { PollRecord } from '../model/inbound.js';
import { RETENTION_S, type RedisKeys } from './keys.js';
import { LuaScript } from './scripts.js';

/** How long a bot question waits for its answer: a day, as a customer may answer the next morning. */
export const BOT_QUESTION_TTL_S = 24 * 3600;
/** How long Ponte can read votes on its own polls (as long as it keeps the poll's message ids). */
const POLL_TTL_S = RETENTION_S;

/**
 * Keeps the question of bot message `mid` unless the conversation's
 * question is that message already: a send repeated after a crash or a
 * retry then never revives a question that was answered meanwhile.
 * KEYS: question hash. ARGV: mid, question JSON, ttl.
 */
const REMEMBER = new LuaScript<number>('BotQuestionRemember', `
if redis.call('HGET', KEYS[1], 'mid') == ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'mid', ARGV[1], 'q', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
`);

/**
 * The answer `waId` takes the question of bot message `mid`: 1 when it is
 * the first answer (or the same answer again, on a retried delivery), 0
 * when another answer took it or the conversation asks another question.
 * KEYS: question hash. ARGV: mid, waId.
 */
const CLAIM = new LuaScript<number>('BotQuestionClaim', `
if redis.call('HGET', KEYS[1], 'mid') ~= ARGV[1] then return 0 end
local by = redis.call('HGET', KEYS[1], 'by')
if by and by ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'by', ARGV[2])
return 1
`);

/** A remembered question, and which WhatsApp message answered it, once one did. */
export type StoredBotQuestion = BotQuestion & { answeredBy?: string };

/**
 * One instance's bot questions, by Chatwoot conversation (the id both
 * directions know: the outbound consumer sends the question, the inbound
 * relay resolves the customer's chat to the same conversation). Only the
 * latest question of a conversation is kept; an answer consumes it.
 */
export class BotQuestions {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly instanceKey: string,
  ) {}

  private key(conversationId: number): string {
    return this.keys.botQuestion(this.instanceKey, conversationId);
  }

  /** Remembers the conversation's question, replacing an older one (a repeat of the same one keeps it as it is, answered or not). */
  async remember(conversationId: number, question: BotQuestion): Promise<void> {
    await REMEMBER.run(this.redis, [this.key(conversationId)], [String(question.messageId), JSON.stringify(question), String(BOT_QUESTION_TTL_S)]);
  }

  /** What reading votes on a poll Ponte sent takes (the record the inbound side reads for every poll). */
  async rememberPoll(pollWaId: string, record: PollRecord): Promise<void> {
    await this.redis.set(this.keys.poll(this.instanceKey, pollWaId), JSON.stringify(record), 'EX', POLL_TTL_S);
  }

  async get(conversationId: number): Promise<StoredBotQuestion | undefined> {
    const h = await this.redis.hgetall(this.key(conversationId));
    if (!h.q) return undefined;
    const q = JSON.parse(h.q) as BotQuestion;
    return h.by ? { ...q, answeredBy: h.by } : q;
  }

  /** The answer `waId` takes the question of bot message `messageId`; true when it may reply to it (a repeat of the same answer may too). */
  async claim(conversationId: number, messageId: number, waId: string): Promise<boolean> {
    return (await CLAIM.run(this.redis, [this.key(conversationId)], [String(messageId), waId])) === 1;
  }
}
