/**
 * Ponte's records of each agent message it sends: WhatsApp ids, sent bodies and reported status.
 *
 * What Ponte records in Redis of each agent message it sends: the WhatsApp id of each part, what was sent
 * (to answer a recipient's retry receipt), and the message's status as reported to Chatwoot. Knows no
 * WhatsApp library: bodies are stored as the bytes the caller encoded.
 */
import type { Redis } from 'ioredis';
import type { CwMessageStatus } from '../chatwoot/types.js';
import { RETENTION_S, type RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';

/** Statuses in the order ticks go: a message never goes back to a lower one. `failed` only before WhatsApp accepted it, or when WhatsApp refuses it afterwards for a limit (`refuse`). */
const RANK: Record<CwMessageStatus, number> = { failed: 0, sent: 1, delivered: 2, read: 3 };

/** The durable state of one agent message. */
export interface MessageState {
  /** WhatsApp accepted at least one part: from then on the message is never marked failed, and a Retry sends nothing. */
  accepted: boolean;
  /** Ponte marked it failed (before WhatsApp accepted it). */
  failed: boolean;
  /** The highest status Chatwoot should show, and the highest it has confirmed. */
  want: CwMessageStatus | undefined;
  reported: CwMessageStatus | undefined;
  /** The agent-facing reason of a failure. */
  reason: string | undefined;
  conversationId: number | undefined;
}

/**
 * Raises the wanted status of a message, never lowering it: `failed` only
 * while WhatsApp has accepted nothing; a status after `failed` (a Retry that
 * went through) replaces it. Returns 1 when Chatwoot must be told.
 * KEYS: state hash, unreported set. ARGV: status, its rank, conversation id, message id, reason, ttl.
 */
const RAISE = new LuaScript<number>('OutRaise', `
if redis.call('HGET', KEYS[1], 'refused') == '1' then return 0 end
local accepted = redis.call('HGET', KEYS[1], 'accepted') == '1'
local want = redis.call('HGET', KEYS[1], 'want')
local rank = tonumber(ARGV[2])
local ranks = { failed = 0, sent = 1, delivered = 2, read = 3 }
if ARGV[1] == 'failed' then
  if accepted or (want and want ~= 'failed') then return 0 end
  if want == 'failed' then return 0 end
  redis.call('HSET', KEYS[1], 'want', 'failed', 'failed', '1', 'reason', ARGV[5])
else
  if want and want ~= 'failed' and ranks[want] >= rank then return 0 end
  redis.call('HSET', KEYS[1], 'want', ARGV[1])
  redis.call('HDEL', KEYS[1], 'failed', 'reason')
end
redis.call('HSET', KEYS[1], 'conv', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('SADD', KEYS[2], ARGV[4])
return 1
`);

/**
 * Chatwoot took `status`: record it as reported (never lowering), and drop
 * the message from the unreported set once nothing higher is wanted.
 * KEYS: state hash, unreported set. ARGV: status, its rank, message id.
 */
const CONFIRM = new LuaScript('OutConfirm', `
local ranks = { failed = 0, sent = 1, delivered = 2, read = 3 }
local reported = redis.call('HGET', KEYS[1], 'reported')
local rank = tonumber(ARGV[2])
if ARGV[1] == 'failed' or (not reported) or reported == 'failed' or ranks[reported] < rank then
  redis.call('HSET', KEYS[1], 'reported', ARGV[1])
end
if redis.call('HGET', KEYS[1], 'want') == redis.call('HGET', KEYS[1], 'reported') then redis.call('SREM', KEYS[2], ARGV[3]) end
return 1
`);

/**
 * WhatsApp took a part, then refused it (an error ack: 463 for its reach-out
 * lock, or another code): the one case a sent message becomes failed. Final:
 * no later tick raises it.
 * KEYS: state hash, unreported set. ARGV: conversation id, message id, reason, ttl.
 */
const REFUSE = new LuaScript<number>('OutRefuse', `
if redis.call('HGET', KEYS[1], 'refused') == '1' then return 0 end
redis.call('HSET', KEYS[1], 'want', 'failed', 'failed', '1', 'refused', '1', 'reason', ARGV[3], 'conv', ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('SADD', KEYS[2], ARGV[2])
return 1
`);

/** Chooses a part's WhatsApp id once: the kept one, or `fresh`. KEYS: intents. ARGV: part, fresh id, ttl. */
const PART_ID = new LuaScript<string>('OutPartId', `
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return redis.call('HGET', KEYS[1], ARGV[1])
`);

/**
 * A part WhatsApp accepted, in one step. KEYS: parts, wa → part, cw → wa, state, stats, sent body.
 * ARGV: part, waId, part record, conversation id, ttl, sent body ('' for none).
 */
const RECORD_SENT = new LuaScript('OutRecordSent', `
local ttl = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SET', KEYS[2], ARGV[3], 'EX', ttl)
redis.call('SET', KEYS[3], ARGV[2], 'EX', ttl, 'NX')
redis.call('HSET', KEYS[4], 'accepted', '1', 'conv', ARGV[4])
redis.call('EXPIRE', KEYS[4], ttl)
redis.call('HINCRBY', KEYS[5], 'sent', 1)
if ARGV[6] ~= '' then redis.call('SET', KEYS[6], ARGV[6], 'EX', ttl) end
return 1
`);

/** Keeps the highest receipt of a part; returns { parts sent, every part's receipt }. KEYS: statuses, parts. ARGV: part, status, ttl. */
const RECEIPT = new LuaScript<[number, string[]]>('OutReceipt', `
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > v then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {redis.call('HLEN', KEYS[2]), redis.call('HVALS', KEYS[1])}
`);


/** WhatsApp receipt statuses Ponte reports: 3 delivered, 4 read, 5 played (a voice note heard: read). */
export const WA_RECEIPT_STATUS: Readonly<Record<number, CwMessageStatus>> = { 3: 'delivered', 4: 'read', 5: 'read' };

export interface SentPart {
  messageId: number;
  conversationId: number;
  part: number;
  jid: string;
}

export class OutboundRecords {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly instanceKey: string,
  ) {}

  private stateKey(messageId: number): string {
    return this.keys.outState(this.instanceKey, messageId);
  }

  private get unreportedKey(): string {
    return this.keys.outUnreported(this.instanceKey);
  }

  /** Part index → WhatsApp id, for the parts already sent. */
  async sentParts(messageId: number): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.outParts(this.instanceKey, messageId));
  }

  /**
   * The WhatsApp id part `part` is sent under: chosen once and kept, so a
   * send repeated after a crash reuses it and the recipient's phone drops
   * the duplicate.
   */
  async partId(messageId: number, part: number, fresh: string): Promise<string> {
    return (await PART_ID.run(this.redis, [this.keys.outIntents(this.instanceKey, messageId)], [String(part), fresh, String(RETENTION_S)])) ?? fresh;
  }

  /** The secret a poll part is sent with (base64): chosen once and kept with its id, so a repeat sends the poll its votes are encrypted for. */
  async partSecret(messageId: number, part: number, fresh: string): Promise<string> {
    return (await PART_ID.run(this.redis, [this.keys.outIntents(this.instanceKey, messageId)], [`${part}:secret`, fresh, String(RETENTION_S)])) ?? fresh;
  }

  /**
   * WhatsApp accepted part `p.part` as `waId`: one step records the part,
   * the id mappings both ways, what was sent (for retry receipts) and that
   * the message was accepted, before any status reaches Chatwoot.
   */
  async recordSent(p: SentPart, waId: string, sentBody: Uint8Array | undefined): Promise<void> {
    const k = this.keys;
    const i = this.instanceKey;
    await RECORD_SENT.run(
      this.redis,
      [k.outParts(i, p.messageId), k.outWa(i, waId), k.cwToWa(i, p.messageId), this.stateKey(p.messageId), k.stats(i), k.outSent(i, waId)],
      [String(p.part), waId, `${p.conversationId}:${p.messageId}:${p.part}:${p.jid}`, String(p.conversationId), String(RETENTION_S), sentBody ? Buffer.from(sentBody).toString('base64') : ''],
    );
  }

  /** What was sent as `waId` (the encoded `proto.Message`), for a recipient's retry receipt. */
  async sentBody(waId: string): Promise<Uint8Array | undefined> {
    const v = await this.redis.get(this.keys.outSent(this.instanceKey, waId));
    return v ? Buffer.from(v, 'base64') : undefined;
  }

  /** Whether WhatsApp accepted any part of the message (one read; the primary asks it of every update). */
  async accepted(messageId: number): Promise<boolean> {
    return (await this.redis.hget(this.stateKey(messageId), 'accepted')) === '1';
  }

  /** The Chatwoot message and part a WhatsApp id belongs to. */
  async partOf(waId: string): Promise<SentPart | undefined> {
    const v = await this.redis.get(this.keys.outWa(this.instanceKey, waId));
    if (!v) return undefined;
    const [conversationId, messageId, part, ...jid] = v.split(':');
    return { conversationId: Number(conversationId), messageId: Number(messageId), part: Number(part), jid: jid.join(':') };
  }

  async state(messageId: number): Promise<MessageState> {
    const h = await this.redis.hgetall(this.stateKey(messageId));
    const status = (v: string | undefined): CwMessageStatus | undefined => (v === 'sent' || v === 'delivered' || v === 'read' || v === 'failed' ? v : undefined);
    return {
      accepted: h.accepted === '1',
      failed: h.failed === '1',
      want: status(h.want),
      reported: status(h.reported),
      reason: h.reason,
      conversationId: h.conv ? Number(h.conv) : undefined,
    };
  }

  /** Raises what Chatwoot should show (never lowering; `failed` only before WhatsApp accepted). True when it changed. */
  async raise(messageId: number, conversationId: number, status: CwMessageStatus, reason = ''): Promise<boolean> {
    const r = await RAISE.run(this.redis, [this.stateKey(messageId), this.unreportedKey], [status, String(RANK[status]), String(conversationId), String(messageId), reason, String(RETENTION_S)]);
    return r === 1;
  }

  /** WhatsApp refused the message after accepting it (an error ack for a limit): failed with `reason`, for good. True when it changed. */
  async refuse(messageId: number, conversationId: number, reason: string): Promise<boolean> {
    return (await REFUSE.run(this.redis, [this.stateKey(messageId), this.unreportedKey], [String(conversationId), String(messageId), reason, String(RETENTION_S)])) === 1;
  }

  /** Chatwoot took `status` for the message. */
  async confirm(messageId: number, status: CwMessageStatus): Promise<void> {
    await CONFIRM.run(this.redis, [this.stateKey(messageId), this.unreportedKey], [status, String(RANK[status]), String(messageId)]);
  }

  /** Messages whose wanted status Chatwoot has not confirmed yet (after a restart or an outage). */
  async unreported(): Promise<number[]> {
    return (await this.redis.smembers(this.unreportedKey)).map(Number).filter((n) => Number.isSafeInteger(n));
  }

  /** Forgets a message Chatwoot no longer has (deleted): nothing more to report. */
  async drop(messageId: number): Promise<void> {
    await this.redis.srem(this.unreportedKey, String(messageId));
  }

  /**
   * Records a receipt for one part and returns the status of the whole
   * message: the lowest over its parts once every part has one (WhatsApp
   * numbers: 3 delivered, 4 read), undefined while some part has none.
   */
  async receipt(p: SentPart, waStatus: number): Promise<CwMessageStatus | undefined> {
    const stKey = this.keys.outStatus(this.instanceKey, p.messageId);
    const partsKey = this.keys.outParts(this.instanceKey, p.messageId);
    // Keep the highest per part: read before delivered stays read.
    const [parts, statuses] = await RECEIPT.run(this.redis, [stKey, partsKey], [String(p.part), String(waStatus), String(RETENTION_S)]);
    if (statuses.length < parts) return undefined;
    const lowest = Math.min(...statuses.map(Number));
    return WA_RECEIPT_STATUS[lowest];
  }
}
