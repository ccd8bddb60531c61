/** What keeps a number safe, in Redis per instance: customers' last messages, opt-outs, the proactive-send limiter and WhatsApp's restrictions. */
import type { Redis } from 'ioredis';
import type { SendRestriction } from '../model/instance.js';
import type { RedisKeys } from './keys.js';
import { LuaScript } from './scripts.js';

/** A customer who wrote within this window is being answered: messages to them are replies, never limited. */
export const REPLY_WINDOW_MS = 24 * 3600_000;
const MINUTE_MS = 60_000;
const HOUR_MS = 3600_000;

/**
 * The limiter's atomic check-and-take for one proactive send. Sliding
 * windows: a sorted set of the number's proactive sends of the last minute,
 * one of the new chats of the last hour, the earliest time of the next send
 * (random spacing) and a mark per chat already reached (so only the first
 * proactive message to a chat counts as a new chat). The clock is the
 * caller's (ARGV), so tests need not sleep.
 * KEYS: minute zset, hour zset, next-at, chat reached.
 * ARGV: now ms, per minute, new chats per hour, spacing ms, member, reached ttl ms.
 * Returns 0 when the send may go (and took its slot), else how many ms to wait.
 */
const TAKE = new LuaScript<number>('SafetyTake', `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ${MINUTE_MS})
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ${HOUR_MS})
local wait = 0
local nextAt = tonumber(redis.call('GET', KEYS[3]) or '0')
if nextAt > now then wait = nextAt - now end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + ${MINUTE_MS} - now)
end
local newChat = redis.call('EXISTS', KEYS[4]) == 0
if newChat and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + ${HOUR_MS} - now)
end
if wait > 0 then return math.ceil(wait) end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], ${MINUTE_MS * 2})
if newChat then
  redis.call('ZADD', KEYS[2], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ${HOUR_MS * 2})
end
local spacing = tonumber(ARGV[4])
if spacing > 0 then redis.call('SET', KEYS[3], now + spacing, 'PX', spacing + 1000) else redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[4], '1', 'PX', tonumber(ARGV[6]))
return 0
`);

/**
 * Starts or extends a restriction; 1 when it was not on (a new one: operators are told).
 * An exact end (WhatsApp's own) replaces an estimated one. KEYS: lock. ARGV: until ms, now ms, '1' when exact.
 */
const LOCK = new LuaScript<number>('SafetyLock', `
local until_ms = tonumber(ARGV[1])
local ttl = until_ms - tonumber(ARGV[2])
if ttl <= 0 then return 0 end
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= until_ms and ARGV[3] ~= '1' then return 0 end
redis.call('SET', KEYS[1], until_ms, 'PX', ttl)
if current > 0 then return 0 end
return 1
`);

/** The limiter's settings. */
export interface SendLimits {
  sendsPerMinute: number;
  newChatsPerHour: number;
}

/** Of the reach-out lock's and the cap's ends (`restrictionKey` order), the later one if it is still to come. */
function pickRestriction(values: ReadonlyArray<string | null>, nowMs: number): { kind: SendRestriction; untilMs: number } | undefined {
  const [reachout = 0, cap = 0] = values.map((v) => Number(v ?? 0));
  const r = reachout >= cap ? { kind: 'reachout' as const, untilMs: reachout } : { kind: 'cap' as const, untilMs: cap };
  return r.untilMs > nowMs ? r : undefined;
}

/** Per-instance safety records. Every process of every host shares them through Redis. */
export class SendSafetyStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly instanceKey: string,
  ) {}

  private key(what: string): string {
    return `${this.keys.prefix}safe:${this.instanceKey}:${what}`;
  }

  /** A customer wrote (at `atMs`) in the chat under each of these addresses. */
  async noteIncoming(jids: readonly string[], atMs: number): Promise<void> {
    const ttlMs = REPLY_WINDOW_MS + HOUR_MS;
    const pipeline = this.redis.pipeline();
    for (const jid of new Set(jids)) pipeline.set(this.key(`in:${jid}`), String(atMs), 'PX', ttlMs);
    await pipeline.exec();
  }

  /** When the customer last wrote under any of these addresses; undefined: not within the window. */
  async lastIncoming(jids: readonly string[]): Promise<number | undefined> {
    if (jids.length === 0) return undefined;
    const values = await this.redis.mget(...jids.map((j) => this.key(`in:${j}`)));
    const times = values.filter((v): v is string => v !== null).map(Number);
    return times.length ? Math.max(...times) : undefined;
  }

  /**
   * Takes a slot for one proactive send to `jid` (`member`: unique per
   * attempt): 0 when it may go now, else the ms to wait.
   */
  take(jid: string, member: string, limits: SendLimits, spacingMs: number, nowMs = Date.now()): Promise<number> {
    return TAKE.run(
      this.redis,
      [this.key('min'), this.key('hour'), this.key('next'), this.key(`reached:${jid}`)],
      [String(nowMs), String(limits.sendsPerMinute), String(limits.newChatsPerHour), String(Math.max(0, Math.round(spacingMs))), member, String(REPLY_WINDOW_MS)],
    );
  }

  /** The message already took its slot (a retry or a typing pause must not take another). */
  async passed(messageId: number): Promise<boolean> {
    return (await this.redis.exists(this.key(`pass:${messageId}`))) === 1;
  }

  async markPassed(messageId: number): Promise<void> {
    await this.redis.set(this.key(`pass:${messageId}`), '1', 'PX', REPLY_WINDOW_MS);
  }

  /** A message waits for the limiter (shown as held in the status). */
  async hold(messageId: number): Promise<void> {
    await this.redis.zadd(this.key('held'), Date.now(), String(messageId));
  }

  async release(messageId: number): Promise<void> {
    await this.redis.zrem(this.key('held'), String(messageId));
  }

  /**
   * What the status shows, in one round trip: the messages waiting for the
   * limiter (entries older than a day are dropped: their conversations went
   * away) and the restriction on now.
   */
  async status(nowMs = Date.now()): Promise<{ held: number; restricted?: { kind: SendRestriction; untilMs: number } }> {
    const replies = await this.redis
      .pipeline()
      .zremrangebyscore(this.key('held'), '-inf', nowMs - REPLY_WINDOW_MS)
      .zcard(this.key('held'))
      .mget(this.restrictionKey('reachout'), this.restrictionKey('cap'))
      .exec();
    const failed = replies?.find(([err]) => err)?.[0];
    if (!replies || failed) throw failed ?? new Error('the status pipeline was not run');
    const restricted = pickRestriction(replies[2]![1] as Array<string | null>, nowMs);
    return { held: Number(replies[1]![1]), ...(restricted ? { restricted } : {}) };
  }

  private restrictionKey(kind: SendRestriction): string {
    return this.key(kind === 'reachout' ? 'lock' : 'cap');
  }

  /** WhatsApp restricts the number: proactive sends stop until `untilMs`. True when this starts the restriction (not one already on). */
  async lock(kind: SendRestriction, untilMs: number, exact: boolean, nowMs = Date.now()): Promise<boolean> {
    return (await LOCK.run(this.redis, [this.restrictionKey(kind)], [String(Math.round(untilMs)), String(nowMs), exact ? '1' : '0'])) === 1;
  }

  /** WhatsApp says the restriction is over. */
  async unlock(kind: SendRestriction): Promise<void> {
    await this.redis.del(this.restrictionKey(kind));
  }

  /** The restriction that stops proactive sends now (the one that ends last when both are on); undefined: none. */
  async restriction(nowMs = Date.now()): Promise<{ kind: SendRestriction; untilMs: number } | undefined> {
    return pickRestriction(await this.redis.mget(this.restrictionKey('reachout'), this.restrictionKey('cap')), nowMs);
  }

  /** True the first time it is called for `mark` within `ttlMs` (a warning operators hear once). */
  async firstTime(mark: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.key(`told:${mark}`), '1', 'PX', Math.max(1000, Math.round(ttlMs)), 'NX')) === 'OK';
  }

  /** When the composing indicator of a message was shown (its send waits until then plus the typing time). */
  async typingStarted(messageId: number, nowMs: number): Promise<number> {
    const k = this.key(`typing:${messageId}`);
    await this.redis.set(k, String(nowMs), 'PX', HOUR_MS, 'NX');
    return Number((await this.redis.get(k)) ?? nowMs);
  }
}

/**
 * Customers who opted out (OPT_OUT_KEYWORDS), per instance and chat. The
 * send API asks `isOptedOut` before it accepts a message.
 */
export class OptOuts {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  private key(instanceKey: string, jid: string): string {
    return `${this.keys.prefix}safe:${instanceKey}:optout:${jid}`;
  }

  /** Whether the customer at any of these addresses opted out (and has not written since). */
  async isOptedOut(instanceKey: string, ...jids: string[]): Promise<boolean> {
    if (jids.length === 0) return false;
    return (await this.redis.exists(...jids.map((j) => this.key(instanceKey, j)))) > 0;
  }

  /** Records an opt-out under each address; true when the customer was not opted out yet (answer once). */
  async optOut(instanceKey: string, jids: readonly string[], atMs = Date.now()): Promise<boolean> {
    const was = await this.isOptedOut(instanceKey, ...jids);
    const pipeline = this.redis.pipeline();
    for (const jid of new Set(jids)) pipeline.set(this.key(instanceKey, jid), String(atMs));
    await pipeline.exec();
    return !was;
  }

  /** The customer wrote again: the opt-out ends. True when there was one. */
  async optIn(instanceKey: string, jids: readonly string[]): Promise<boolean> {
    if (jids.length === 0) return false;
    return (await this.redis.del(...[...new Set(jids)].map((j) => this.key(instanceKey, j)))) > 0;
  }
}
