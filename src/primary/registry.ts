/** The instance registry in Redis: each instance's inbox, account, desired state and notify target. */
import type { Redis } from 'ioredis';
import { instanceKey as keyOf } from '../model/instance-key.js';
import type { InstanceRecord, InstanceSettings, InstanceSettingsPatch } from '../model/instance.js';
import type { RedisKeys } from '../redis/keys.js';

/**
 * The instance registry: one Redis hash, instance key → JSON record. The
 * primary owns it and mirrors the keys in memory, so a webhook can tell a
 * known instance from an unknown one without waiting on Redis.
 */
export class InstanceRegistry {
  private readonly known = new Set<string>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** Whether the instance exists, from memory (filled by `list`, kept by `upsert` and `remove`). */
  has(instanceKey: string): boolean {
    return this.known.has(instanceKey);
  }

  async list(): Promise<InstanceRecord[]> {
    const all = await this.redis.hgetall(this.keys.instances);
    this.known.clear();
    for (const k of Object.keys(all)) this.known.add(k);
    return Object.values(all)
      .map((v) => JSON.parse(v) as InstanceRecord)
      .sort((a, b) => a.createdAtMs - b.createdAtMs || a.instanceKey.localeCompare(b.instanceKey));
  }

  async get(instanceKey: string): Promise<InstanceRecord | undefined> {
    const v = await this.redis.hget(this.keys.instances, instanceKey);
    return v ? (JSON.parse(v) as InstanceRecord) : undefined;
  }

  /** Creates the instance, or updates its notify target and sets it running. Returns the record and whether it is new. */
  async upsert(request: { accountId: number; inboxId: number; notify?: InstanceRecord['notify'] }): Promise<{ record: InstanceRecord; created: boolean }> {
    const instanceKey = keyOf({ accountId: request.accountId, inboxId: request.inboxId });
    const now = Date.now();
    const existing = await this.get(instanceKey);
    const record: InstanceRecord = {
      instanceKey,
      accountId: request.accountId,
      inboxId: request.inboxId,
      desired: 'running',
      ...((request.notify ?? existing?.notify) ? { notify: request.notify ?? existing!.notify! } : {}),
      ...(existing?.settings ? { settings: existing.settings } : {}),
      createdAtMs: existing?.createdAtMs ?? now,
      updatedAtMs: now,
    };
    await this.redis.hset(this.keys.instances, instanceKey, JSON.stringify(record));
    this.known.add(instanceKey);
    return { record, created: !existing };
  }

  async setDesired(instanceKey: string, desired: InstanceRecord['desired']): Promise<InstanceRecord | undefined> {
    const record = await this.get(instanceKey);
    if (!record) return undefined;
    const next = { ...record, desired, updatedAtMs: Date.now() };
    await this.redis.hset(this.keys.instances, instanceKey, JSON.stringify(next));
    return next;
  }

  /** Applies `patch` to the instance's settings: a field set to `null` goes back to the global configuration. */
  async updateSettings(instanceKey: string, patch: InstanceSettingsPatch): Promise<InstanceRecord | undefined> {
    const record = await this.get(instanceKey);
    if (!record) return undefined;
    const settings: InstanceSettings = { ...record.settings };
    for (const k of Object.keys(patch) as Array<keyof InstanceSettings>) {
      const v = patch[k];
      if (v === null) delete settings[k];
      else if (v !== undefined) settings[k] = v;
    }
    const { settings: _old, ...rest } = record;
    const next: InstanceRecord = { ...rest, ...(Object.keys(settings).length > 0 ? { settings } : {}), updatedAtMs: Date.now() };
    await this.redis.hset(this.keys.instances, instanceKey, JSON.stringify(next));
    return next;
  }

  async remove(instanceKey: string): Promise<void> {
    await this.redis.hdel(this.keys.instances, instanceKey);
    this.known.delete(instanceKey);
  }
}


