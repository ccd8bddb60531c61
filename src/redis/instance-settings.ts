/** Reads an instance's own settings from the registry record the primary keeps in Redis (workers read, never write). */
import type { Redis } from 'ioredis';
import { BOT_OPTIONS_STYLES, type BotOptionsStyle } from '../model/bot-question.js';
import type { InstanceSettings } from '../model/instance.js';
import type { RedisKeys } from './keys.js';

/**
 * The settings of `instanceKey` as its registry record holds them (one
 * HGET, so a change through the admin API applies to the next message);
 * `{}` when the record has none, or holds a value this version does not know.
 */
export async function readInstanceSettings(redis: Redis, keys: RedisKeys, instanceKey: string): Promise<InstanceSettings> {
  const raw = await redis.hget(keys.instances, instanceKey);
  if (!raw) return {};
  const settings = (JSON.parse(raw) as { settings?: Record<string, unknown> }).settings ?? {};
  const style = settings.botOptionsStyle;
  return BOT_OPTIONS_STYLES.includes(style as BotOptionsStyle) ? { botOptionsStyle: style as BotOptionsStyle } : {};
}
