/** The outbound conversation lists: each raise of a conversation's flag is a generation of its own, and only that generation's job drains it. */
import { afterAll, describe, expect, it } from 'vitest';
import type { OutboundJob } from '../../src/outbound/inbox-events.js';
import { outboundEvent } from '../../src/outbound/outbound-queue.js';
import { OutboundStore } from '../../src/outbound/outbound-store.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const redis = testRedis();
const prefix = randomPrefix();
const keys = new RedisKeys(prefix);

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

const send = (messageId: number, conversationId = 7): OutboundJob => ({
  kind: 'send',
  accountId: 1,
  conversationId,
  messageId,
  content: `resposta ${messageId}`,
  attachments: [],
  contact: { sourceId: '5511911112222@s.whatsapp.net' },
  receivedAtMs: Date.now(),
});

describe('outbound store', () => {
  it('a conversation emptied by its job and written to again gets a new generation, so the new job is not the finishing one', async () => {
    const store = new OutboundStore(redis, keys, '1-1');
    const first = await store.enqueue(outboundEvent(send(1)));
    expect(first.appended).toBe(true);
    const g1 = first.needsJob!.generation;
    // While the flag is up, more events ride on the same job; a repeat adds nothing.
    expect(await store.enqueue(outboundEvent(send(2)))).toEqual({ appended: true });
    expect(await store.enqueue(outboundEvent(send(2)))).toEqual({ appended: false });

    // A job of another generation (an old one run again) gets nothing and lowers nothing.
    expect(await store.next(7, 'g0')).toBeUndefined();
    for (const id of [1, 2]) {
      const head = await store.next(7, g1);
      expect(head?.event.job.messageId).toBe(id);
      await store.ack(7, head!);
    }
    // Empty: the same step lowers the flag.
    expect(await store.next(7, g1)).toBeUndefined();
    expect(await store.pendingConversations()).toEqual([]);

    // The job of g1 may still be finishing in BullMQ: the next event raises another generation, hence another job id.
    const again = await store.enqueue(outboundEvent(send(3)));
    const g2 = again.needsJob!.generation;
    expect(g2).not.toBe(g1);
    expect(await store.next(7, g1)).toBeUndefined();
    expect(await store.scheduled()).toEqual([{ conversationId: 7, generation: g2 }]);
    expect((await store.next(7, g2))?.event.job.messageId).toBe(3);
  });

  it('the sweep raises a flag for a conversation that holds events without one', async () => {
    const store = new OutboundStore(redis, keys, '1-2');
    await store.enqueue(outboundEvent(send(10, 9)));
    await redis.del(`${keys.outbound('1-2')}sched:9`);
    const [scheduled] = await store.scheduled();
    expect(scheduled?.conversationId).toBe(9);
    expect((await store.next(9, scheduled!.generation))?.event.job.messageId).toBe(10);
  });
});
