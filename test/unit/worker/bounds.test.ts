/** Memory a worker keeps per instance has one owner and a bound: own-send ids, sandbox media, unread keys. */
import { afterAll, describe, expect, it } from 'vitest';
import { UnreadMessages } from '../../../src/outbound/unread.js';
import { RedisKeys } from '../../../src/redis/keys.js';
import { SandboxCdn } from '../../../src/sandbox/cdn.js';
import { ownSendIds } from '../../../src/worker/own-sends.js';
import { deleteKeys, randomPrefix, testRedis } from '../../support/redis.js';

const redis = testRedis();
const prefix = randomPrefix();

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('bounded worker memory', () => {
  it('own-send ids: at most `max`, each forgotten after its time', () => {
    let now = 1_000_000;
    const ids = ownSendIds({ max: 100, ttlMs: 1000, now: () => now });
    for (let i = 0; i < 1000; i++) ids.set(`ID${i}`, true);
    expect(ids.size).toBe(100);
    expect(ids.has('ID999')).toBe(true);
    expect(ids.has('ID0')).toBe(false);
    now += 1001;
    expect(ids.has('ID999')).toBe(false);
  });

  it('sandbox media: in files, at most `maxBytes`, the newest kept, streamed back whole', async () => {
    const media = new SandboxCdn(1024 * 1024);
    const sha = (i: number) => String(i).padStart(64, '0');
    for (let i = 0; i < 10; i++) media.put(sha(i), Buffer.alloc(300 * 1024, i));
    // The same media sent twice stays one file.
    media.put(sha(9), Buffer.alloc(300 * 1024, 9));
    expect(media.size).toBeLessThanOrEqual(1024 * 1024);
    expect(media.open(sha(0))).toBeUndefined();
    const chunks: Buffer[] = [];
    for await (const chunk of media.open(sha(9))!) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(Buffer.alloc(300 * 1024, 9));
  });

  it('unread keys: at most 50 per conversation, in Redis, taken once', async () => {
    const unread = new UnreadMessages(redis, new RedisKeys(prefix), '1-1');
    for (let i = 0; i < 80; i++) await unread.add(9, { remoteJid: '5511911112222@s.whatsapp.net', id: `M${i}`, fromMe: false });
    expect(await unread.count(9)).toBe(50);
    const keys = await unread.take(9);
    expect(keys.map((k) => k.id)).toEqual(Array.from({ length: 50 }, (_, i) => `M${i + 30}`));
    expect(await unread.take(9)).toEqual([]);
  });
});
