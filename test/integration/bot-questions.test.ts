/** The bot questions in Redis: one per conversation, used up by its first answer, never revived by a repeated send; instance settings kept by the registry. */
import { afterAll, describe, expect, it } from 'vitest';
import { InstanceRegistry } from '../../src/primary/registry.js';
import { BOT_QUESTION_TTL_S, BotQuestions } from '../../src/redis/bot-questions.js';
import { readInstanceSettings } from '../../src/redis/instance-settings.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const redis = testRedis();
const prefix = randomPrefix();
const keys = new RedisKeys(prefix);

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

const options = [
  { title: 'Pix', value: 'pix' },
  { title: 'Boleto', value: 'boleto' },
];

describe('bot questions', () => {
  it('the first answer takes the question; the same answer again (a retried delivery) still may, another never', async () => {
    const q = new BotQuestions(redis, keys, '1-1');
    await q.remember(7, { messageId: 100, options, pollWaId: 'POLL100' });
    expect(await q.get(7)).toEqual({ messageId: 100, options, pollWaId: 'POLL100' });
    expect(await redis.ttl(keys.botQuestion('1-1', 7))).toBeGreaterThan(BOT_QUESTION_TTL_S - 10);

    expect(await q.claim(7, 100, 'WA1')).toBe(true);
    expect(await q.claim(7, 100, 'WA1')).toBe(true);
    expect(await q.claim(7, 100, 'WA2')).toBe(false);
    expect((await q.get(7))?.answeredBy).toBe('WA1');
    // An answer to an older question claims nothing of the current one.
    expect(await q.claim(7, 99, 'WA3')).toBe(false);
  });

  it('a repeated send of the same bot message keeps its answered question; a new bot message replaces it', async () => {
    const q = new BotQuestions(redis, keys, '1-1');
    await q.remember(8, { messageId: 200, options });
    expect(await q.claim(8, 200, 'WA10')).toBe(true);
    await q.remember(8, { messageId: 200, options });
    expect((await q.get(8))?.answeredBy).toBe('WA10');
    await q.remember(8, { messageId: 201, options: [options[0]!] });
    expect(await q.get(8)).toEqual({ messageId: 201, options: [options[0]] });
    expect(await q.claim(8, 201, 'WA11')).toBe(true);
    // Other conversations and instances are apart.
    expect(await new BotQuestions(redis, keys, '1-2').get(8)).toBeUndefined();
    expect(await q.get(9)).toBeUndefined();
  });

  it('instance settings: set, kept when the instance is created again, cleared with null, read by the worker', async () => {
    const registry = new InstanceRegistry(redis, keys);
    await registry.upsert({ accountId: 3, inboxId: 4 });
    expect(await readInstanceSettings(redis, keys, '3-4')).toEqual({});
    expect((await registry.updateSettings('3-4', { botOptionsStyle: 'poll' }))?.settings).toEqual({ botOptionsStyle: 'poll' });
    await registry.upsert({ accountId: 3, inboxId: 4, notify: { accountId: 3, conversationId: 9 } });
    expect(await readInstanceSettings(redis, keys, '3-4')).toEqual({ botOptionsStyle: 'poll' });
    // A field left out stays; null goes back to BOT_OPTIONS_STYLE.
    expect((await registry.updateSettings('3-4', {}))?.settings).toEqual({ botOptionsStyle: 'poll' });
    const cleared = await registry.updateSettings('3-4', { botOptionsStyle: null });
    expect(cleared?.settings).toBeUndefined();
    expect(await readInstanceSettings(redis, keys, '3-4')).toEqual({});
    expect(await registry.updateSettings('9-9', { botOptionsStyle: 'text' })).toBeUndefined();
    expect(await readInstanceSettings(redis, keys, '9-9')).toEqual({});
  });
});
