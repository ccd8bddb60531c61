/** What Ponte keeps in Redis of an instance's contact names: WhatsApp's contacts, the names Ponte wrote, the latest run. */
import type { Redis } from 'ioredis';
import type { ContactsRunStatus } from '../model/instance.js';
import { RETENTION_S, type RedisKeys } from '../redis/keys.js';

/** A contact of the number as WhatsApp knows it, by the person's canonical identifier. */
export interface KnownContact {
  /** Canonical phone-number JID, when known. */
  pn?: string;
  lid?: string;
  /** The name the number's owner saved for the contact. */
  name?: string;
  /** The name the contact set on WhatsApp (push name). */
  notify?: string;
}

type Counter = 'created' | 'updated' | 'skipped' | 'errors';

/**
 * Redis records of one instance's contact names (`names:<instance>:`):
 * `known`, a hash identifier → {@link KnownContact} (JSON), merged as
 * WhatsApp sends more; `written`, a hash Chatwoot contact id → the name
 * Ponte last wrote there (a name that differs was changed by an agent);
 * `run`, a hash with the latest run's state and counts.
 */
export class ContactBook {
  private readonly base: string;

  constructor(
    private readonly redis: Redis,
    keys: RedisKeys,
    instanceKey: string,
  ) {
    this.base = keys.contactNames(instanceKey);
  }

  private get knownKey(): string {
    return `${this.base}known`;
  }
  private get writtenKey(): string {
    return `${this.base}written`;
  }
  private get runKey(): string {
    return `${this.base}run`;
  }

  /** Merges contacts into what is known (a field WhatsApp leaves out keeps its earlier value); returns the merged records. */
  async remember(entries: ReadonlyMap<string, KnownContact>): Promise<Map<string, KnownContact>> {
    const merged = new Map<string, KnownContact>();
    if (entries.size === 0) return merged;
    const ids = [...entries.keys()];
    const before = await this.redis.hmget(this.knownKey, ...ids);
    for (const [i, id] of ids.entries()) {
      const old = before[i] ? (JSON.parse(before[i]) as KnownContact) : {};
      merged.set(id, { ...old, ...entries.get(id)! });
    }
    const flat: Record<string, string> = {};
    for (const [id, k] of merged) flat[id] = JSON.stringify(k);
    await this.redis.multi().hset(this.knownKey, flat).expire(this.knownKey, RETENTION_S).exec();
    return merged;
  }

  /** The saved name WhatsApp gave for a person, if any. */
  async savedName(identifier: string): Promise<string | undefined> {
    const raw = await this.redis.hget(this.knownKey, identifier);
    return raw ? (JSON.parse(raw) as KnownContact).name : undefined;
  }

  /** How many contacts are known. */
  size(): Promise<number> {
    return this.redis.hlen(this.knownKey);
  }

  /** Every known contact, a page at a time. */
  async *all(): AsyncGenerator<Array<[string, KnownContact]>> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.knownKey, cursor, 'COUNT', 200);
      cursor = next;
      const page: Array<[string, KnownContact]> = [];
      for (let i = 0; i + 1 < flat.length; i += 2) page.push([flat[i]!, JSON.parse(flat[i + 1]!) as KnownContact]);
      if (page.length > 0) yield page;
    } while (cursor !== '0');
  }

  /** The name Ponte last wrote on a Chatwoot contact. */
  async written(contactId: number): Promise<string | undefined> {
    return (await this.redis.hget(this.writtenKey, String(contactId))) ?? undefined;
  }

  async recordWritten(contactId: number, name: string): Promise<void> {
    await this.redis.multi().hset(this.writtenKey, String(contactId), name).expire(this.writtenKey, RETENTION_S).exec();
  }

  async run(): Promise<ContactsRunStatus | undefined> {
    const h = await this.redis.hgetall(this.runKey);
    if (!h.state) return undefined;
    const n = (v: string | undefined) => Number(v ?? 0);
    const state = h.state === 'done' || h.state === 'stopped' ? h.state : 'running';
    return { state, contacts: n(h.contacts), created: n(h.created), updated: n(h.updated), skipped: n(h.skipped), errors: n(h.errors) };
  }

  async startRun(contacts: number): Promise<void> {
    await this.redis
      .multi()
      .del(this.runKey)
      .hset(this.runKey, { state: 'running', contacts, created: 0, updated: 0, skipped: 0, errors: 0 })
      .expire(this.runKey, RETENTION_S)
      .exec();
  }

  async count(counter: Counter): Promise<void> {
    await this.redis.hincrby(this.runKey, counter, 1);
  }

  async endRun(state: 'done' | 'stopped'): Promise<void> {
    await this.redis.hset(this.runKey, 'state', state);
  }
}
