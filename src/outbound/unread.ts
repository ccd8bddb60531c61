/** The customer's messages not yet marked read on WhatsApp, by Chatwoot conversation, kept in Redis. */
import type { WAMessageKey } from '@whiskeysockets/baileys';
import type { Redis } from 'ioredis';
import { RETENTION_S, type RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';

/** At most this many keys per conversation: marking the newest read marks the chat read on the phone. */
const MAX_PER_CONVERSATION = 50;

/** KEYS: the conversation's list. ARGV: the key, the cap, ttl. */
const ADD = new LuaScript('UnreadAdd', `
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
`);

/** KEYS: the conversation's list. */
const TAKE = new LuaScript<string[]>('UnreadTake', `
local all = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return all
`);

/**
 * Keyed by the Chatwoot conversation, which already joins a person's phone
 * number and LID, and kept in Redis, so a reply after a restart or after the
 * person's addressing changed still marks every earlier message read.
 */
export class UnreadMessages {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly instanceKey: string,
  ) {}

  /** A customer's message reached the conversation. */
  async add(conversationId: number, key: WAMessageKey): Promise<void> {
    const k = this.keys.outUnread(this.instanceKey, conversationId);
    await ADD.run(this.redis, [k], [JSON.stringify(key), String(MAX_PER_CONVERSATION), String(RETENTION_S)]);
  }

  /** Takes every key of the conversation (they are being marked read). */
  async take(conversationId: number): Promise<WAMessageKey[]> {
    const k = this.keys.outUnread(this.instanceKey, conversationId);
    const raw = await TAKE.run(this.redis, [k], []);
    return raw.map((r) => JSON.parse(r) as WAMessageKey);
  }

  /** Keys waiting in a conversation (for tests and status). */
  async count(conversationId: number): Promise<number> {
    return this.redis.llen(this.keys.outUnread(this.instanceKey, conversationId));
  }
}
