/** The sandbox's records in Redis: what Ponte sent (the outbox) and marked read, written by workers, read by the primary. */
import type { Redis } from 'ioredis';
import { LIST_CAP, type RedisKeys } from '../redis/keys.js';
import { LuaScript } from '../redis/scripts.js';
import type { OutboxEntry, SocketLogEntry } from './schemas.js';

/** Appends to the outbox unless the id was sent before; both capped. KEYS: outbox list, id set. ARGV: id, entry, cap. */
const OUTBOX_APPEND = new LuaScript('SandboxOutboxAppend', `
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 and ARGV[1] ~= '' then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
if redis.call('SCARD', KEYS[2]) > 2 * tonumber(ARGV[3]) then redis.call('SPOP', KEYS[2], tonumber(ARGV[3])) end
return 1
`);

/** Appends ids to a capped list. KEYS: the list. ARGV: cap, ids… */
const APPEND_CAPPED = new LuaScript('SandboxAppendCapped', `
for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
return 1
`);

/**
 * Kept in Redis so the primary can serve them and they survive a worker
 * crash; capped, so a long rehearsal keeps the newest entries. Baileys-free:
 * the primary reads these without loading the driver.
 */
export class SandboxRecords {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** Records a send; one repeated under the same id (after a crash) is dropped, as the recipient's phone drops it. */
  async recordSend(instanceKey: string, entry: OutboxEntry): Promise<void> {
    const list = this.keys.sandboxOutbox(instanceKey);
    await OUTBOX_APPEND.run(this.redis, [list, `${list}:ids`], [entry.id, JSON.stringify(entry), String(LIST_CAP)]);
  }

  async recordRead(instanceKey: string, ids: string[]): Promise<void> {
    const key = this.keys.sandboxRead(instanceKey);
    if (ids.length > 0) await APPEND_CAPPED.run(this.redis, [key], [String(LIST_CAP), ...ids]);
  }

  /**
   * Appends to the instance's connection log. The command goes out at once,
   * on the connection the worker's lease uses too: a close recorded before a
   * lease is released reaches Redis before it.
   */
  recordSocket(instanceKey: string, entry: SocketLogEntry): Promise<unknown> {
    return APPEND_CAPPED.run(this.redis, [this.keys.sandboxSockets(instanceKey)], [String(LIST_CAP), JSON.stringify(entry)]);
  }

  /** The instance's connection log, oldest first. */
  async sockets(instanceKey: string): Promise<SocketLogEntry[]> {
    return (await this.redis.lrange(this.keys.sandboxSockets(instanceKey), 0, -1)).map((r) => JSON.parse(r) as SocketLogEntry);
  }

  /** The ids of the messages Ponte marked read, oldest first. */
  readReceipts(instanceKey: string): Promise<string[]> {
    return this.redis.lrange(this.keys.sandboxRead(instanceKey), 0, -1);
  }

  /** Every message Ponte sent through the instance, in order; `deleted` when later revoked. */
  async outbox(instanceKey: string): Promise<OutboxEntry[]> {
    const raw = await this.redis.lrange(this.keys.sandboxOutbox(instanceKey), 0, -1);
    const entries = raw.map((r) => JSON.parse(r) as OutboxEntry);
    const revoked = new Set(entries.filter((e) => e.type === 'revoke' && e.targetId).map((e) => e.targetId!));
    return entries.filter((e) => e.type !== 'revoke').map((e) => (revoked.has(e.id) ? { ...e, deleted: true } : e));
  }
}
