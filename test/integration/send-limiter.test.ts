/** The proactive-send limiter's Lua check-and-take, the reach-out lock and opt-outs, on the shared Redis with a clock passed in. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisKeys } from '../../src/redis/keys.js';
import { OptOuts, SendSafetyStore } from '../../src/redis/send-safety.js';
import { OutboundRecords } from '../../src/outbound/outbound-records.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

describe('send limiter', () => {
  let redis: Redis;
  const prefix = randomPrefix();
  const keys = new RedisKeys(prefix);
  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(async () => {
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('lets SENDS_PER_MINUTE through per sliding minute and says how long the next waits', async () => {
    const s = new SendSafetyStore(redis, keys, '1-1');
    const limits = { sendsPerMinute: 3, newChatsPerHour: 1000 };
    const t0 = 1_000_000_000;
    const results: number[] = [];
    for (let i = 0; i < 3; i++) results.push(await s.take(`55119000000${i}@s.whatsapp.net`, `m${i}`, limits, 0, t0 + i * 1000));
    expect(results).toEqual([0, 0, 0]);
    // The fourth within the minute waits until the first leaves the window.
    expect(await s.take('551190000009@s.whatsapp.net', 'm3', limits, 0, t0 + 3000)).toBe(57_000);
    expect(await s.take('551190000009@s.whatsapp.net', 'm3b', limits, 0, t0 + 60_000)).toBe(0);
  });

  it('counts only the first proactive message to a chat as a new chat, per hour', async () => {
    const s = new SendSafetyStore(redis, keys, '1-2');
    const limits = { sendsPerMinute: 1000, newChatsPerHour: 2 };
    const t0 = 2_000_000_000;
    expect(await s.take('a@s.whatsapp.net', 'a1', limits, 0, t0)).toBe(0);
    expect(await s.take('b@s.whatsapp.net', 'b1', limits, 0, t0 + 10)).toBe(0);
    // A chat already reached is no new chat: it goes.
    expect(await s.take('a@s.whatsapp.net', 'a2', limits, 0, t0 + 20)).toBe(0);
    // A third new chat waits for the hour of the first.
    expect(await s.take('c@s.whatsapp.net', 'c1', limits, 0, t0 + 30)).toBe(3_600_000 - 30);
    expect(await s.take('c@s.whatsapp.net', 'c2', limits, 0, t0 + 3_600_000)).toBe(0);
  });

  it('spaces proactive sends by the pause the caller drew', async () => {
    const s = new SendSafetyStore(redis, keys, '1-3');
    const limits = { sendsPerMinute: 1000, newChatsPerHour: 1000 };
    const t0 = 3_000_000_000;
    expect(await s.take('a@s.whatsapp.net', 'a', limits, 4000, t0)).toBe(0);
    expect(await s.take('b@s.whatsapp.net', 'b', limits, 4000, t0 + 1500)).toBe(2500);
    expect(await s.take('b@s.whatsapp.net', 'b2', limits, 4000, t0 + 4000)).toBe(0);
  });

  it('starts a restriction once, lets an exact end replace an estimate, ends it; the later of the lock and the cap applies', async () => {
    const s = new SendSafetyStore(redis, keys, '1-4');
    const now = Date.now();
    expect(await s.lock('reachout', now + 3_600_000, false, now)).toBe(true);
    expect(await s.lock('reachout', now + 3_600_000, false, now)).toBe(false);
    expect(await s.lock('reachout', now + 600_000, true, now)).toBe(false);
    expect(await s.restriction(now)).toEqual({ kind: 'reachout', untilMs: now + 600_000 });
    // The new-chat cap is a restriction of its own: new once, and the one that ends last is shown.
    expect(await s.lock('cap', now + 7_200_000, true, now)).toBe(true);
    expect(await s.restriction(now)).toEqual({ kind: 'cap', untilMs: now + 7_200_000 });
    // The status reads it with the held count in one go.
    await s.hold(41);
    expect(await s.status(now)).toEqual({ held: 1, restricted: { kind: 'cap', untilMs: now + 7_200_000 } });
    await s.release(41);
    await s.unlock('cap');
    expect(await s.restriction(now)).toEqual({ kind: 'reachout', untilMs: now + 600_000 });
    await s.unlock('reachout');
    expect(await s.restriction(now)).toBeUndefined();
    // A warning is passed on once.
    expect(await s.firstTime('cap:FIRST_WARNING:1', 60_000)).toBe(true);
    expect(await s.firstTime('cap:FIRST_WARNING:1', 60_000)).toBe(false);
  });

  it('records opt-outs per chat: new once, ended by writing again', async () => {
    const o = new OptOuts(redis, keys);
    const jids = ['5511988887777@s.whatsapp.net', '200000000000001@lid'];
    expect(await o.isOptedOut('1-5', jids[0]!)).toBe(false);
    expect(await o.optOut('1-5', jids)).toBe(true);
    expect(await o.optOut('1-5', jids)).toBe(false);
    expect(await o.isOptedOut('1-5', '200000000000001@lid')).toBe(true);
    expect(await o.isOptedOut('1-6', jids[0]!)).toBe(false);
    expect(await o.optIn('1-5', jids)).toBe(true);
    expect(await o.isOptedOut('1-5', jids[0]!)).toBe(false);
  });

  it('knows when the customer last wrote', async () => {
    const s = new SendSafetyStore(redis, keys, '1-7');
    expect(await s.lastIncoming(['x@s.whatsapp.net'])).toBeUndefined();
    await s.noteIncoming(['x@s.whatsapp.net', 'y@lid'], 12345);
    expect(await s.lastIncoming(['y@lid'])).toBe(12345);
  });

  it('a sent message refused for a limit becomes failed for good: no later tick raises it', async () => {
    const records = new OutboundRecords(redis, keys, '1-8');
    await records.recordSent({ messageId: 70, conversationId: 7, part: 0, jid: 'a@s.whatsapp.net' }, 'WA70', undefined);
    expect(await records.raise(70, 7, 'sent')).toBe(true);
    // An ordinary failure never lowers a message WhatsApp accepted.
    expect(await records.raise(70, 7, 'failed', 'nope')).toBe(false);
    expect(await records.refuse(70, 7, 'restricted')).toBe(true);
    expect(await records.refuse(70, 7, 'restricted')).toBe(false);
    expect(await records.raise(70, 7, 'delivered')).toBe(false);
    const state = await records.state(70);
    expect(state).toMatchObject({ want: 'failed', failed: true, reason: 'restricted' });
    expect(await records.unreported()).toContain(70);
  });
});
