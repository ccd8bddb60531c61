/** The history WhatsApp sent an instance, kept in Redis until imported, and the import's state and per-chat plan. */
import type { Redis } from 'ioredis';
import type { ImportNotify } from '../model/history-import.js';
import type { HistoryImportStatus } from '../model/instance.js';
import type { InboundMessage } from '../model/inbound.js';
import { RETENTION_S, type RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';

/** The most history messages kept per instance waiting for an import (the oldest go first). */
export const HISTORY_KEEP_MAX = 50_000;

/** A history message as kept: the normalized message and its place in its chat (`timestampS * 1000 + n`). */
export interface HistoryMessage {
  message: InboundMessage;
  order: number;
}

/** The oldest message WhatsApp sent of a chat: where a request for older history starts. */
export interface OldestMessage {
  key: { remoteJid: string; id: string; fromMe: boolean; participant?: string };
  timestampS: number;
}

/** The import's record: its status, window and bookkeeping. */
export interface ImportRun extends HistoryImportStatus {
  /** Start of its time window, seconds since the epoch. */
  sinceS: number;
  /** Quarters of progress already reported (0–3). */
  reported: number;
  notify?: ImportNotify;
}

/**
 * Keeps what the history sets brought (each message once, bodies in a hash,
 * their times in a sorted set), drops what is past the retention or over
 * the cap, oldest first. KEYS: bodies, times, oldest-per-chat. ARGV: ttl,
 * cutoff (s), cap, then (waId, time, body) per message, then '|', then
 * (chat, oldest JSON, time) per chat. Returns how many were new.
 */
const KEEP = new LuaScript<number>('HistoryKeep', `
local ttl = tonumber(ARGV[1])
local added = 0
local i = 4
while ARGV[i] ~= '|' do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 2]) == 1 then
    redis.call('ZADD', KEYS[2], tonumber(ARGV[i + 1]), ARGV[i])
    added = added + 1
  end
  i = i + 3
end
i = i + 1
while i <= #ARGV do
  local known = redis.call('HGET', KEYS[3], ARGV[i])
  local older = true
  if known then
    local ok, k = pcall(cjson.decode, known)
    if ok and type(k) == 'table' and tonumber(k.timestampS) and tonumber(k.timestampS) <= tonumber(ARGV[i + 2]) then older = false end
  end
  if older then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
  i = i + 3
end
local function drop(ids)
  for _, id in ipairs(ids) do redis.call('HDEL', KEYS[1], id) end
  if #ids > 0 then redis.call('ZREM', KEYS[2], unpack(ids)) end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2], 'LIMIT', 0, 5000))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then drop(redis.call('ZRANGE', KEYS[2], 0, over - 1)) end
for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ttl) end
return added
`);

/**
 * Moves kept messages into the import's plan: each into its chat's sorted
 * set, its chat listed, the run's totals raised. KEYS: times, run, chats,
 * run chats. ARGV: ttl, key base, then (waId, chat, order) per message.
 * Returns how many were planned.
 */
const PLAN = new LuaScript<number>('HistoryPlan', `
local ttl = tonumber(ARGV[1])
local planned = 0
for i = 3, #ARGV, 3 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    local chat = ARGV[i + 1]
    local c = ARGV[2] .. 'c:' .. chat
    redis.call('ZADD', c, tonumber(ARGV[i + 2]), ARGV[i])
    redis.call('EXPIRE', c, ttl)
    redis.call('SADD', KEYS[3], chat)
    redis.call('SADD', KEYS[4], chat)
    planned = planned + 1
  end
end
redis.call('HINCRBY', KEYS[2], 'messages', planned)
redis.call('HSET', KEYS[2], 'chats', redis.call('SCARD', KEYS[4]))
for k = 2, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
return planned
`);

/**
 * One planned message done: out of its chat (the chat unlisted once empty),
 * its body dropped, counted; when it was created, its id mapping recorded
 * as the live path records it. KEYS: chat plan, bodies, run, chats,
 * attempts, anchors, mapping, reverse mapping. ARGV: waId, chat, counter,
 * mapping value ('' when not created), Chatwoot message id, ttl. Returns
 * the run's created, skipped, errors, messages.
 */
const FINISH = new LuaScript<Array<string | null>>('HistoryFinish', `
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[2]) end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
if redis.call('HGET', KEYS[3], 'inflight') == ARGV[1] then redis.call('HSET', KEYS[3], 'inflight', '') end
if ARGV[4] ~= '' then
  local ttl = tonumber(ARGV[6])
  redis.call('SET', KEYS[7], ARGV[4], 'EX', ttl)
  redis.call('SET', KEYS[8], ARGV[1], 'EX', ttl)
  redis.call('HSET', KEYS[6], ARGV[2], ARGV[5])
  redis.call('EXPIRE', KEYS[6], ttl)
end
return redis.call('HMGET', KEYS[3], 'created', 'skipped', 'errors', 'messages')
`);

/** Ends the run when no chat has messages left. KEYS: run, chats. ARGV: now (ms). Returns 1 when it ended. */
const END_IF_EMPTY = new LuaScript<number>('HistoryEndIfEmpty', `
if redis.call('SCARD', KEYS[2]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'finishedAtMs', ARGV[1], 'inflight', '')
return 1
`);

/**
 * The Redis side of an instance's history import (keys under
 * `hist:<instance>:`): the history sets WhatsApp sent, kept until imported
 * or past the retention, at most {@link HISTORY_KEEP_MAX} messages; the
 * oldest message of each chat (where a request for older history starts);
 * the run (status, window, counts, the create under way) and its plan, one
 * sorted set per chat, oldest first. Everything expires with Ponte's
 * retention when left alone.
 */
export class HistoryStore {
  private readonly base: string;
  private readonly ttlS: number;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly instanceKey: string,
    opts: { retentionS?: number } = {},
  ) {
    this.base = keys.history(instanceKey);
    this.ttlS = opts.retentionS ?? RETENTION_S;
  }

  private key(name: string): string {
    return `${this.base}${name}`;
  }

  /** Keeps a history set's messages (those already kept are left as they are) and each chat's oldest; returns how many were new. */
  async keep(messages: readonly HistoryMessage[], oldest: ReadonlyMap<string, OldestMessage>, nowMs = Date.now()): Promise<number> {
    const cutoffS = Math.floor(nowMs / 1000) - this.ttlS;
    let added = 0;
    const chats = [...oldest].flatMap(([chat, o]) => [chat, JSON.stringify(o), String(o.timestampS)]);
    // In slices, so one large history set never becomes one huge script call.
    for (let i = 0; i < Math.max(messages.length, 1); i += 500) {
      const slice = messages.slice(i, i + 500).flatMap((m) => [m.message.waId, String(m.message.timestampS), JSON.stringify(m)]);
      const args = [String(this.ttlS), String(cutoffS), String(HISTORY_KEEP_MAX), ...slice, '|', ...(i === 0 ? chats : [])];
      added += await KEEP.run(this.redis, [this.key('m'), this.key('t'), this.key('oldest')], args);
    }
    return added;
  }

  /** How many kept messages (not yet in an import) are at least as recent as `sinceS`. */
  countSince(sinceS: number): Promise<number> {
    return this.redis.zcount(this.key('t'), sinceS, '+inf');
  }

  /** Kept messages (not yet in an import) at least as recent as `sinceS`, at most `limit`. */
  async keptSince(sinceS: number, limit: number): Promise<HistoryMessage[]> {
    const ids = await this.redis.zrangebyscore(this.key('t'), sinceS, '+inf', 'LIMIT', 0, limit);
    return this.bodies(ids);
  }

  private async bodies(ids: readonly string[]): Promise<HistoryMessage[]> {
    if (ids.length === 0) return [];
    const raw = await this.redis.hmget(this.key('m'), ...ids);
    return raw.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as HistoryMessage);
  }

  /** Each chat's oldest known message, by the chat's JID as WhatsApp named it. */
  async oldest(): Promise<Map<string, OldestMessage>> {
    const raw = await this.redis.hgetall(this.key('oldest'));
    return new Map(Object.entries(raw).map(([chat, v]) => [chat, JSON.parse(v) as OldestMessage]));
  }

  /** Starts a new run (its counts at zero, its plan empty) for the window from `sinceS`. */
  async startRun(o: { sinceS: number; notify?: ImportNotify; demandUntilMs?: number; demandSinceS?: number }, nowMs = Date.now()): Promise<void> {
    const run = this.key('run');
    await this.redis
      .multi()
      .del(run, this.key('runchats'), this.key('attempts'))
      .hset(run, {
        state: 'running',
        sinceS: String(o.sinceS),
        startedAtMs: String(nowMs),
        chats: '0',
        messages: '0',
        created: '0',
        skipped: '0',
        errors: '0',
        reported: '0',
        inflight: '',
        ...(o.notify ? { notify: JSON.stringify(o.notify) } : {}),
        ...(o.demandUntilMs !== undefined && o.demandSinceS !== undefined ? { demandUntilMs: String(o.demandUntilMs), demandSinceS: String(o.demandSinceS) } : {}),
      })
      .expire(run, this.ttlS)
      .exec();
  }

  /**
   * Changes the running (or last) run's window or progress target, or
   * records an asked-for window: until `demandUntilMs`, history arriving is
   * imported from `demandSinceS`.
   */
  async updateRun(o: { sinceS?: number; notify?: ImportNotify; demandUntilMs?: number; demandSinceS?: number; reported?: number }): Promise<void> {
    const fields: Record<string, string> = {};
    if (o.sinceS !== undefined) fields.sinceS = String(o.sinceS);
    if (o.notify) fields.notify = JSON.stringify(o.notify);
    if (o.demandUntilMs !== undefined) fields.demandUntilMs = String(o.demandUntilMs);
    if (o.demandSinceS !== undefined) fields.demandSinceS = String(o.demandSinceS);
    if (o.reported !== undefined) fields.reported = String(o.reported);
    if (Object.keys(fields).length === 0) return;
    await this.redis.multi().hset(this.key('run'), fields).expire(this.key('run'), this.ttlS).exec();
  }

  /** Takes kept messages into the running import's plan, each into `chats[i]` at its order; returns how many. */
  async plan(messages: readonly HistoryMessage[], chats: readonly string[]): Promise<number> {
    let planned = 0;
    for (let i = 0; i < messages.length; i += 500) {
      const args = messages.slice(i, i + 500).flatMap((m, j) => [m.message.waId, chats[i + j]!, String(m.order)]);
      planned += await PLAN.run(this.redis, [this.key('t'), this.key('run'), this.key('chats'), this.key('runchats')], [String(this.ttlS), this.base, ...args]);
    }
    return planned;
  }

  /** The run, if there has been one. */
  async run(): Promise<ImportRun | undefined> {
    const h = await this.redis.hgetall(this.key('run'));
    if (h.state !== 'running' && h.state !== 'done') return undefined;
    const n = (k: string): number => Number(h[k] ?? 0);
    return {
      state: h.state,
      chats: n('chats'),
      messages: n('messages'),
      created: n('created'),
      skipped: n('skipped'),
      errors: n('errors'),
      sinceS: n('sinceS'),
      reported: n('reported'),
      ...(h.notify ? { notify: JSON.parse(h.notify) as ImportNotify } : {}),
    };
  }

  /** Chats with planned messages left. */
  async chats(): Promise<string[]> {
    return (await this.redis.smembers(this.key('chats'))).sort();
  }

  /** A chat's oldest planned message, if any. */
  async head(chat: string): Promise<HistoryMessage | undefined> {
    for (;;) {
      const [waId] = await this.redis.zrange(this.key(`c:${chat}`), '0', '0');
      if (waId === undefined) return undefined;
      const raw = await this.redis.hget(this.key('m'), waId);
      if (raw !== null) return JSON.parse(raw) as HistoryMessage;
      // Its body is gone (a manual clean-up): nothing to import, count it as skipped.
      await this.finish(chat, waId, 'skipped');
    }
  }

  /** The window asked for last (`erga import`), its progress target, and until when arriving history goes into it. */
  async demand(): Promise<{ untilMs: number; sinceS: number; notify?: ImportNotify } | undefined> {
    const [until, since, notify] = await this.redis.hmget(this.key('run'), 'demandUntilMs', 'demandSinceS', 'notify');
    if (!until || !since) return undefined;
    return { untilMs: Number(until), sinceS: Number(since), ...(notify ? { notify: JSON.parse(notify) as ImportNotify } : {}) };
  }

  /** The WhatsApp id whose create is under way, if any. */
  async inflight(): Promise<string | undefined> {
    return (await this.redis.hget(this.key('run'), 'inflight')) || undefined;
  }

  /** Marks `waId`'s create as under way (found by a lookup if its answer is lost). */
  async markInflight(waId: string): Promise<void> {
    await this.redis.hset(this.key('run'), 'inflight', waId);
  }

  /** The last Chatwoot message the import created in a chat (where a lookup for a lost create starts). */
  async anchor(chat: string): Promise<number | undefined> {
    const v = await this.redis.hget(this.key('anchor'), chat);
    return v === null ? undefined : Number(v);
  }

  /** Counts a failure of `waId` itself; returns the attempts so far. */
  async recordAttempt(waId: string): Promise<number> {
    const n = await this.redis.hincrby(this.key('attempts'), waId, 1);
    await this.redis.expire(this.key('attempts'), this.ttlS);
    return n;
  }

  /**
   * One planned message done (`created` with its mapping, else `skipped` or
   * `errors`); returns the run's counts after it.
   */
  async finish(chat: string, waId: string, counter: 'created' | 'skipped' | 'errors', mapping?: { value: string; messageId: number }): Promise<Pick<HistoryImportStatus, 'created' | 'skipped' | 'errors' | 'messages'>> {
    const k = this.keys;
    const keys = [this.key(`c:${chat}`), this.key('m'), this.key('run'), this.key('chats'), this.key('attempts'), this.key('anchor'), k.waToCw(this.instanceKey, waId), k.cwToWa(this.instanceKey, mapping?.messageId ?? 0)];
    const [created, skipped, errors, messages] = (await FINISH.run(this.redis, keys, [waId, chat, counter, mapping?.value ?? '', String(mapping?.messageId ?? 0), String(this.ttlS)])).map((v) => Number(v ?? 0));
    return { created: created!, skipped: skipped!, errors: errors!, messages: messages! };
  }

  /** Ends the run if no chat has planned messages left; true when it ended. */
  async endIfEmpty(nowMs = Date.now()): Promise<boolean> {
    return (await END_IF_EMPTY.run(this.redis, [this.key('run'), this.key('chats')], [String(nowMs)])) === 1;
  }

  /** Forgets everything: kept history, the run and its plan (the number was unlinked). */
  async clear(): Promise<void> {
    const chats = await this.redis.smembers(this.key('chats'));
    const names = ['m', 't', 'oldest', 'run', 'runchats', 'chats', 'attempts', 'anchor', ...chats.map((c) => `c:${c}`)];
    await this.redis.del(...names.map((n) => this.key(n)));
  }
}
