/** Per-chat ordered storage of one instance's inbound events in Redis, with its Lua scripts. */
import type { Redis } from 'ioredis';
import type { InboundEvent } from '../model/inbound.js';
import { authorOf, encodeRelayed, type RelayedMessage, senderDigitsOf } from '../model/relayed.js';
import { DRAIN_FLAG_FN } from '../redis/drain-flag-lua.js';
import { LIST_CAP, RETENTION_S, type RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';

/**
 * Per-chat ordered storage of one instance's inbound events in Redis.
 *
 * BullMQ's open-source edition has no job groups, so order within a chat is
 * kept here (DESIGN.md, Decisions 5): every event is appended to its chat's
 * Redis list, and one BullMQ job per chat (deduplicated by job id) drains
 * that list head first. The scripts below make each step atomic:
 *
 * - `ingest`: drops a WhatsApp id already seen, maps the person's addresses
 *   (PN and LID) to one stable chat id, appends the event, and raises the
 *   chat's "scheduled" flag; the caller adds the drain job only when the flag
 *   was newly raised.
 * - `next`: hands the consumer its chat's head in one round trip: skips
 *   heads already delivered (counted as duplicates), reads the chat's cache
 *   and marks the head in flight there, or, when the list is empty, lowers
 *   the flag in the same step, so an event appended while the job was
 *   finishing either is seen by that job or raises the flag again and gets a
 *   job of its own.
 *
 * Each raise of the flag is a new generation (`g<n>`), and the drain job's id
 * carries it: a job that lowered the flag may still be finishing in BullMQ
 * when the next event raises it again, and a job of the same id would be
 * ignored until the sweep. A job hands out heads only while the flag holds
 * its own generation, so an old job run again (stalled, retried) never
 * drains beside the current one.
 * - `ack` / `skip` / `park`: remove the head only if it is still the event
 *   the consumer worked on, and record the outcome with it; `ack` then does
 *   `next` in the same step.
 *
 * Nothing is ever stranded: `pendingChats` lists every chat with events, and
 * the consumer re-adds their jobs at start-up and periodically (BullMQ
 * ignores an id that already exists).
 *
 * These scripts compute some key names inside Lua, which a single Redis (or a
 * replicated one) allows; Redis Cluster is not supported, as for BullMQ.
 */

/**
 * The chat of a person's addresses (PN and LID JIDs, '' when unknown): the
 * chat the first known one names, else `default`; both addresses are kept
 * for it, expiring with the retention (the hash `alias` is where older
 * versions kept them).
 */
const CHAT_OF_FN = `
local function chat_of(base, ttl, pn, lid, default)
  local function alias(jid)
    local v = redis.call('GET', base .. 'alias:' .. jid)
    if not v then v = redis.call('HGET', base .. 'alias', jid) end
    return v
  end
  local function keep(jid, chat)
    local key = base .. 'alias:' .. jid
    if not redis.call('SET', key, chat, 'NX', 'EX', ttl) then redis.call('EXPIRE', key, ttl) end
  end
  local chat = false
  if pn ~= '' then chat = alias(pn) end
  if (not chat) and lid ~= '' then chat = alias(lid) end
  if not chat then chat = default end
  if pn ~= '' then keep(pn, chat) end
  if lid ~= '' then keep(lid, chat) end
  return chat
end
`;

const INGEST = `${CHAT_OF_FN}${DRAIN_FLAG_FN}
local base = ARGV[1]
if redis.call('EXISTS', ARGV[8]) == 1 then return {0, '', 0} end
if not redis.call('SET', base .. 'seen:' .. ARGV[2], '1', 'NX', 'EX', tonumber(ARGV[7])) then return {0, '', 0} end
local chat = chat_of(base, tonumber(ARGV[7]), ARGV[3], ARGV[4], ARGV[5])
redis.call('RPUSH', base .. 'chat:' .. chat, ARGV[6])
redis.call('SADD', base .. 'pending', chat)
redis.call('HINCRBY', ARGV[9], 'received', 1)
return {1, chat, raise_flag(base, chat) or ''}
`;

/**
 * The consumer's next head, as a Lua function of (base, chat, chat cache key prefix, mapping key prefix, stats key,
 * the job's generation). Returns 0 when the chat's flag is not that generation (the job is not the chat's current
 * one), false when the chat is empty (its flag lowered), else { raw head, the chat cache as a flat list }.
 * The head is marked in flight in the cache before it is handed out: a create that follows and whose answer
 * is lost is found by the next attempt. At most 100 delivered heads are skipped per call.
 */
const NEXT_FN = `
local function next_head(base, chat, cachePrefix, mapPrefix, stats, gen)
  if redis.call('GET', base .. 'sched:' .. chat) ~= gen then return 0 end
  local list = base .. 'chat:' .. chat
  for _ = 1, 100 do
    local raw = redis.call('LINDEX', list, 0)
    if not raw then
      redis.call('DEL', base .. 'sched:' .. chat)
      redis.call('SREM', base .. 'pending', chat)
      return false
    end
    local ok, event = pcall(cjson.decode, raw)
    local waId = ok and type(event) == 'table' and type(event.message) == 'table' and event.message.waId or nil
    if type(waId) == 'string' and redis.call('EXISTS', mapPrefix .. waId) == 1 then
      redis.call('LPOP', list)
      redis.call('HDEL', base .. 'attempts', waId)
      redis.call('HINCRBY', stats, 'duplicates', 1)
    else
      local cache = redis.call('HGETALL', cachePrefix .. chat)
      if type(waId) == 'string' and #cache > 0 then redis.call('HSET', cachePrefix .. chat, 'inflight', waId) end
      return {raw, cache}
    end
  end
  return {'', {}}
end
`;

const NEXT = `${NEXT_FN}
return next_head(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
`;

// One step: the mapping, the head removed, the chat's cache told the create is no longer in flight.
// Apart, a crash between the cache and the mapping would make the next attempt create it again.
// Then the chat's next head (ARGV[9..11]), so the steady state costs one round trip per message.
const ACK = `${NEXT_FN}
local list = ARGV[1] .. 'chat:' .. ARGV[2]
if redis.call('LINDEX', list, 0) == ARGV[3] then redis.call('LPOP', list) end
redis.call('SET', KEYS[1], ARGV[5], 'EX', tonumber(ARGV[7]))
redis.call('SET', KEYS[2], ARGV[4], 'EX', tonumber(ARGV[7]))
redis.call('HDEL', ARGV[1] .. 'attempts', ARGV[4])
redis.call('HINCRBY', KEYS[3], 'relayed', 1)
redis.call('HSET', KEYS[3], 'lastRelayedAtMs', ARGV[6])
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HSET', KEYS[4], 'lastMessageId', ARGV[8], 'inflight', '')
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[7]))
end
return next_head(ARGV[1], ARGV[2], ARGV[9], ARGV[10], KEYS[3], ARGV[11])
`;

const SKIP = `
local list = ARGV[1] .. 'chat:' .. ARGV[2]
if redis.call('LINDEX', list, 0) == ARGV[3] then redis.call('LPOP', list) end
if ARGV[6] ~= '' and redis.call('HGET', ARGV[6], 'inflight') == ARGV[4] then redis.call('HSET', ARGV[6], 'inflight', '') end
redis.call('HDEL', ARGV[1] .. 'attempts', ARGV[4])
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[1], ARGV[5], 1) end
return 1
`;

const PARK = `
local list = ARGV[1] .. 'chat:' .. ARGV[2]
if redis.call('LINDEX', list, 0) == ARGV[3] then redis.call('LPOP', list) end
if ARGV[7] ~= '' and redis.call('HGET', ARGV[7], 'inflight') == ARGV[4] then redis.call('HSET', ARGV[7], 'inflight', '') end
local parked = ARGV[1] .. 'parked'
redis.call('RPUSH', parked, ARGV[5])
-- Bounded: the oldest parked events beyond the cap are dropped, and counted.
local over = redis.call('LLEN', parked) - tonumber(ARGV[6])
if over > 0 then
  redis.call('LTRIM', parked, over, -1)
  redis.call('HINCRBY', KEYS[1], 'parkedDropped', over)
end
redis.call('HDEL', ARGV[1] .. 'attempts', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'parked', 1)
return 1
`;

const SCHEDULED = `${DRAIN_FLAG_FN}
return schedule_pending(ARGV[1])
`;

const REPLAY = `${DRAIN_FLAG_FN}
local base = ARGV[1]
local replayed = 0
for i = 1, tonumber(ARGV[2]) do
  local raw = redis.call('LPOP', base .. 'parked')
  if not raw then break end
  local entry = cjson.decode(raw)
  redis.call('RPUSH', base .. 'chat:' .. entry.chatId, entry.event)
  redis.call('SADD', base .. 'pending', entry.chatId)
  replayed = replayed + 1
end
return {replayed, schedule_pending(base)}
`;

/**
 * The chats of several messages, resolved from the person's addresses as
 * `ingest` does (and those addresses kept), without queueing anything: the
 * history import orders a message into the same chat as a live one. ARGV:
 * base, ttl, then (pn, lid, default chat) per message. Returns the chats.
 */
const CHATS_OF = new LuaScript<string[]>('InboundChatsOf', `${CHAT_OF_FN}
local base = ARGV[1]
local ttl = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 3 do
  table.insert(out, chat_of(base, ttl, ARGV[i], ARGV[i + 1], ARGV[i + 2]))
end
return out
`);

/**
 * Claims a WhatsApp id for the history import against the live path (whose
 * `ingest` takes the same `seen` mark). KEYS: the id's mapping, its seen
 * mark, its outbound record. ARGV: ttl. Returns `mapped` (in Chatwoot
 * already), `own` (Ponte sent it: an agent's reply), `live` (the live path
 * has it), `again` (an import claimed it before: it may have been created
 * with its answer lost) or `new` (claimed now).
 */
const CLAIM = new LuaScript<string>('InboundClaimForImport', `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'mapped' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'own' end
local v = redis.call('GET', KEYS[2])
if not v then
  redis.call('SET', KEYS[2], 'h', 'EX', tonumber(ARGV[1]))
  return 'new'
end
if v == 'h' then return 'again' end
return 'live'
`);

/** What the live path knows of a WhatsApp id the history import is about to create. */
export type ImportClaim = 'mapped' | 'own' | 'live' | 'again' | 'new';

interface InboundScripts {
  ponteIngest(...args: string[]): Promise<[number, string, string]>;
  ponteScheduled(...args: string[]): Promise<string[]>;
  ponteNext(...args: string[]): Promise<NextReply>;
  ponteAck(numKeys: number, ...args: string[]): Promise<NextReply>;
  ponteSkip(numKeys: number, ...args: string[]): Promise<number>;
  pontePark(numKeys: number, ...args: string[]): Promise<number>;
  ponteReplay(...args: string[]): Promise<[number, string[]]>;
}

function withScripts(redis: Redis): Redis & InboundScripts {
  const r = redis as Redis & Partial<InboundScripts>;
  if (!r.ponteIngest) {
    redis.defineCommand('ponteIngest', { numberOfKeys: 0, lua: INGEST });
    redis.defineCommand('ponteNext', { numberOfKeys: 0, lua: NEXT });
    redis.defineCommand('ponteAck', { lua: ACK });
    redis.defineCommand('ponteSkip', { lua: SKIP });
    redis.defineCommand('pontePark', { lua: PARK });
    redis.defineCommand('ponteReplay', { numberOfKeys: 0, lua: REPLAY });
    redis.defineCommand('ponteScheduled', { numberOfKeys: 0, lua: SCHEDULED });
  }
  return r as Redis & InboundScripts;
}

/** The head of a chat's list: the raw entry (compared on removal) and the parsed event. */
export interface ChatHead {
  raw: string;
  event: InboundEvent;
}

/** What `next` hands the consumer: the head, and the chat's cache as it was before the head was marked in flight. */
export interface NextHead {
  head: ChatHead;
  /** The chat cache hash (`chat:<instance>:<chatId>`); empty when the chat is not resolved yet. */
  cache: Readonly<Record<string, string>>;
}

/** `0`: the job is not the chat's current one; `null` (Lua's false): the chat is empty; `['', []]`: only delivered heads so far, ask again. */
type NextReply = 0 | null | [string, string[]];

/** A chat to drain and the generation of its flag, which the drain job's id carries. */
export interface ScheduledChat {
  chatId: string;
  generation: string;
}

export interface IngestResult {
  /** False when the WhatsApp id was already seen or already delivered. */
  accepted: boolean;
  chatId: string;
  /** The chat had no drain job: the caller adds one, for this generation of its flag. */
  needsJob?: ScheduledChat;
}

export interface ParkedEntry {
  chatId: string;
  event: string;
  error: { code?: string; message: string };
  atMs: number;
}

export interface InboundStoreOptions {
  redis: Redis;
  keys: RedisKeys;
  instanceKey: string;
  /** How long a WhatsApp id is remembered against duplicate upserts, and mappings are kept. */
  retentionS?: number;
}


export class InboundStore {
  private readonly redis: Redis & InboundScripts;
  private readonly base: string;
  private readonly retentionS: number;

  constructor(private readonly opts: InboundStoreOptions) {
    this.redis = withScripts(opts.redis);
    this.base = opts.keys.inbound(opts.instanceKey);
    this.retentionS = opts.retentionS ?? RETENTION_S;
  }

  get instanceKey(): string {
    return this.opts.instanceKey;
  }

  /**
   * Appends an event to its chat. `aliases` are the person's addresses (PN
   * JID first, then LID JID); the first one already known decides the chat,
   * so a person first seen by LID and later by number stays one ordered chat.
   */
  async ingest(event: InboundEvent, aliases: { pn?: string | undefined; lid?: string | undefined }, defaultChatId: string): Promise<IngestResult> {
    const k = this.opts.keys;
    const [status, chatId, raised] = await this.redis.ponteIngest(
      this.base,
      event.message.waId,
      aliases.pn ?? '',
      aliases.lid ?? '',
      defaultChatId,
      JSON.stringify(event),
      String(this.retentionS),
      k.waToCw(this.instanceKey, event.message.waId),
      k.stats(this.instanceKey),
    );
    return { accepted: status === 1, chatId: status === 1 ? chatId : defaultChatId, ...(raised ? { needsJob: { chatId, generation: raised } } : {}) };
  }

  /**
   * The chat's next head to deliver, with the chat's cache, in one round
   * trip (see `next` above); `undefined` once the chat is empty, its flag
   * lowered, or when `generation` is no longer the chat's (another job
   * drains it).
   */
  async next(chatId: string, generation: string): Promise<NextHead | undefined> {
    for (;;) {
      const next = this.parseNext(await this.redis.ponteNext(...this.nextArgs(chatId), generation));
      if (next !== 'again') return next;
    }
  }

  private nextArgs(chatId: string): [string, string, string, string, string] {
    const k = this.opts.keys;
    return [this.base, chatId, k.chat(this.instanceKey, ''), k.waToCw(this.instanceKey, ''), k.stats(this.instanceKey)];
  }

  private parseNext(reply: NextReply): NextHead | undefined | 'again' {
    if (!reply) return undefined;
    const [raw, flat] = reply;
    if (raw === '') return 'again';
    const cache: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) cache[flat[i]!] = flat[i + 1]!;
    return { head: { raw, event: JSON.parse(raw) as InboundEvent }, cache };
  }

  /**
   * Removes the head after it reached Chatwoot and records the id mapping
   * both ways, with the chat and author, and the chat cache's last message
   * (clearing its in-flight mark) in the same step; then answers as `next`.
   */
  async ack(chatId: string, generation: string, head: ChatHead, target: { conversationId: number; messageId: number }): Promise<NextHead | undefined> {
    const k = this.opts.keys;
    const message = head.event.message;
    const waId = message.waId;
    const record: RelayedMessage = {
      ...target,
      chatId,
      chatKind: message.chatKind,
      author: authorOf(message),
      senderDigits: senderDigitsOf(message),
    };
    const [, , chatPrefix, mapPrefix] = this.nextArgs(chatId);
    const reply = await this.redis.ponteAck(
      4,
      k.waToCw(this.instanceKey, waId),
      k.cwToWa(this.instanceKey, target.messageId),
      k.stats(this.instanceKey),
      k.chat(this.instanceKey, chatId),
      this.base,
      chatId,
      head.raw,
      waId,
      encodeRelayed(record),
      String(Date.now()),
      String(this.retentionS),
      String(target.messageId),
      chatPrefix,
      mapPrefix,
      generation,
    );
    const next = this.parseNext(reply);
    return next === 'again' ? this.next(chatId, generation) : next;
  }

  /** Removes the head without delivering it (already delivered, or nothing to relay); counts `counter` when given. */
  async skip(chatId: string, head: ChatHead, counter?: string): Promise<void> {
    const k = this.opts.keys;
    await this.redis.ponteSkip(1, k.stats(this.instanceKey), this.base, chatId, head.raw, head.event.message.waId, counter ?? '', k.chat(this.instanceKey, chatId));
  }

  /** Moves the head to the parked list: failed for good, visible and replayable; the chat goes on. */
  async park(chatId: string, head: ChatHead, error: { code?: string; message: string }): Promise<void> {
    const entry: ParkedEntry = { chatId, event: head.raw, error, atMs: Date.now() };
    const k = this.opts.keys;
    await this.redis.pontePark(1, k.stats(this.instanceKey), this.base, chatId, head.raw, head.event.message.waId, JSON.stringify(entry), String(LIST_CAP), k.chat(this.instanceKey, chatId));
  }

  /**
   * The chats these messages belong to, as `ingest` would queue them (the
   * first address already known decides; the addresses are kept), in one
   * round trip; nothing is queued.
   */
  async chatsOf(aliases: ReadonlyArray<{ pn?: string | undefined; lid?: string | undefined; chatId: string }>): Promise<string[]> {
    if (aliases.length === 0) return [];
    const args = aliases.flatMap((a) => [a.pn ?? '', a.lid ?? '', a.chatId]);
    return CHATS_OF.run(this.opts.redis, [], [this.base, String(this.retentionS), ...args]);
  }

  /**
   * Claims `waId` for the history import: from then on a live copy of it is
   * dropped by `ingest`, as a repeat. Says instead what already has it.
   */
  async claimForImport(waId: string): Promise<ImportClaim> {
    const k = this.opts.keys;
    const keys = [k.waToCw(this.instanceKey, waId), `${this.base}seen:${waId}`, k.outWa(this.instanceKey, waId)];
    return (await CLAIM.run(this.opts.redis, keys, [String(this.retentionS)])) as ImportClaim;
  }

  /** Counts a message-specific failure of `waId`; returns the attempts so far. */
  async recordAttempt(waId: string): Promise<number> {
    const [[, attempts]] = (await this.redis
      .multi()
      .hincrby(`${this.base}attempts`, waId, 1)
      .hincrby(this.opts.keys.stats(this.instanceKey), 'retried', 1)
      .exec()) as [[Error | null, number], [Error | null, number]];
    return attempts;
  }

  async attempts(waId: string): Promise<number> {
    return Number((await this.redis.hget(`${this.base}attempts`, waId)) ?? 0);
  }

  /** Chats that hold events (each should have a drain job). */
  async pendingChats(): Promise<string[]> {
    return this.redis.smembers(`${this.base}pending`);
  }

  /** Every chat that holds events, with its flag's generation (raised where it was missing): the drain jobs there should be. */
  async scheduled(): Promise<ScheduledChat[]> {
    return pairs(await this.redis.ponteScheduled(this.base));
  }

  async depth(chatId?: string): Promise<number> {
    if (chatId !== undefined) return this.redis.llen(`${this.base}chat:${chatId}`);
    const chats = await this.pendingChats();
    if (chats.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const c of chats) pipeline.llen(`${this.base}chat:${c}`);
    const results = (await pipeline.exec()) ?? [];
    return results.reduce((sum, [, n]) => sum + Number(n ?? 0), 0);
  }

  async parked(limit = 100): Promise<ParkedEntry[]> {
    const raw = await this.redis.lrange(`${this.base}parked`, 0, limit - 1);
    return raw.map((r) => JSON.parse(r) as ParkedEntry);
  }

  /** Puts up to `limit` parked events back at the end of their chats; returns how many, and every chat to schedule. */
  async replayParked(limit = 1000): Promise<{ events: number; chats: ScheduledChat[] }> {
    const [events, chats] = await this.redis.ponteReplay(this.base, String(limit));
    return { events, chats: pairs(chats) };
  }

  /** Counters of this instance's inbound path (zero when never incremented). */
  async stats(): Promise<InboundStats> {
    const raw = await this.redis.hgetall(this.opts.keys.stats(this.instanceKey));
    const n = (k: keyof InboundStats): number => Number(raw[k] ?? 0);
    return { received: n('received'), relayed: n('relayed'), duplicates: n('duplicates'), ignored: n('ignored'), parked: n('parked'), retried: n('retried') };
  }
}

export interface InboundStats {
  received: number;
  relayed: number;
  /** Already delivered (found by its WhatsApp id) and skipped. */
  duplicates: number;
  /** Not relayable and skipped. */
  ignored: number;
  parked: number;
  retried: number;
}

function pairs(flat: readonly string[]): ScheduledChat[] {
  const out: ScheduledChat[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ chatId: flat[i]!, generation: flat[i + 1]! });
  return out;
}
