import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { InboundConsumer, type DeliveryOutcome } from '../../src/inbound/inbound-consumer.js';
import type { FailureClass } from '../../src/inbound/classify.js';
import type { ChatJobData } from '../../src/inbound/inbound-queue.js';
import { InstanceJobs } from '../../src/redis/instance-jobs.js';
import { InboundProducer } from '../../src/inbound/inbound-producer.js';
import { InboundStore } from '../../src/inbound/inbound-store.js';
import { RedisKeys } from '../../src/redis/keys.js';
import type { InboundEvent, InboundMessage } from '../../src/model/inbound.js';
import { createLogger } from '../../src/observability/logger.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const log = createLogger({ level: 'silent' });
const INSTANCE = '1-12';

function text(waId: string, chat: string): InboundMessage {
  return {
    waId,
    chatId: chat,
    chatKind: 'direct',
    peer: { pnJid: chat },
    fromMe: false,
    timestampS: 1_700_000_000,
    upsertType: 'notify',
    content: { kind: 'text', text: `message ${waId}` },
  };
}

class TransientError extends Error {}
class OutageError extends Error {}
class RefusedError extends Error {}

function classify(err: unknown): FailureClass {
  if (err instanceof OutageError) return { kind: 'outage', code: 'TEST_OUTAGE', message: err.message };
  if (err instanceof RefusedError) return { kind: 'permanent', code: 'TEST_REFUSED', message: err.message };
  return { kind: 'retry', code: 'TEST_RETRY', message: String(err) };
}

/** Resolves when `predicate` holds, polling Redis-backed state without any time limit of its own (the test timeout bounds it). */
async function until(predicate: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await predicate())) await new Promise((r) => setTimeout(r, 20));
}

describe('inbound queue: per-chat order, exactly once, failures', () => {
  let redis: Redis;
  let prefix: string;
  let keys: RedisKeys;
  let store: InboundStore;
  let jobs: InstanceJobs<ChatJobData>;
  let producer: InboundProducer;
  const consumers: InboundConsumer[] = [];
  let delivered: Array<{ chat: string; waId: string }>;
  let nextId: number;

  const options = {
    attempts: 3,
    backoffDelayMs: 10,
    outageMinDelayMs: 20,
    outageMaxDelayMs: 100,
    rateLimitDelayMs: 20,
    sweepIntervalMs: 200,
  };

  function consumer(deliver: (e: InboundEvent) => Promise<DeliveryOutcome>): InboundConsumer {
    const c = new InboundConsumer({ store, jobs, deliver, classify, log, options });
    consumers.push(c);
    return c;
  }

  const recordingDeliver = (e: InboundEvent): Promise<DeliveryOutcome> => {
    delivered.push({ chat: e.message.chatId, waId: e.message.waId });
    return Promise.resolve({ kind: 'delivered', conversationId: 1, messageId: nextId++ });
  };

  beforeEach(() => {
    redis = testRedis();
    prefix = randomPrefix();
    keys = new RedisKeys(prefix);
    store = new InboundStore({ redis, keys, instanceKey: INSTANCE });
    // The worker process's queue, as one instance of it sees it.
    jobs = new InstanceJobs<ChatJobData>({ connection: redis, prefix: keys.bullPrefix, name: 'inbound.w0', concurrency: 4, lockDurationMs: 5000, stalledIntervalMs: 5000, log });
    jobs.start();
    producer = new InboundProducer(store, jobs.queue, (m) => ({ pn: m.peer.pnJid, lid: m.peer.lidJid, chatId: m.chatId }));
    delivered = [];
    nextId = 1;
  });

  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.close()));
    await jobs.close();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('delivers every message once, each chat in order, chats in parallel', async () => {
    const c = consumer(recordingDeliver);
    await c.start();
    const chats = ['a', 'b', 'c', 'd', 'e', 'f'].map((x) => `55119000000${x.charCodeAt(0)}@s.whatsapp.net`);
    const sent: string[] = [];
    for (let i = 0; i < 120; i++) {
      const chat = chats[i % chats.length]!;
      const id = `M${i}`;
      sent.push(id);
      await producer.enqueue(text(id, chat));
      if (i % 7 === 0) await producer.enqueue(text(id, chat)); // a duplicate upsert
    }
    await until(() => delivered.length >= sent.length);
    await until(async () => (await store.pendingChats()).length === 0);
    expect(delivered.map((d) => d.waId).sort()).toEqual([...sent].sort());
    for (const chat of chats) {
      const order = delivered.filter((d) => d.chat === chat).map((d) => Number(d.waId.slice(1)));
      expect(order).toEqual([...order].sort((x, y) => x - y));
    }
    const stats = await store.stats();
    expect(stats.received).toBe(120);
    expect(stats.relayed).toBe(120);
  });

  it('a message stored just after its chat emptied, while that drain job is still finishing, gets a job of its own (no sweep needed)', async () => {
    const chat = 'late@s.whatsapp.net';
    // The race, made certain: the moment the last head's acknowledgement finds the chat empty (flag lowered,
    // the job not yet completed in BullMQ), the next message is stored and its job added.
    let late: Promise<unknown> | undefined;
    const racing = new (class extends InboundStore {
      override async ack(...args: Parameters<InboundStore['ack']>) {
        const next = await super.ack(...args);
        if (!next && !late) await (late = producer.enqueue(text('L2', chat)));
        return next;
      }
    })({ redis, keys, instanceKey: INSTANCE });
    const c = new InboundConsumer({ store: racing, jobs, deliver: recordingDeliver, classify, log, options: { ...options, sweepIntervalMs: 3_600_000 } });
    consumers.push(c);
    await c.start();
    await producer.enqueue(text('L1', chat));
    await until(() => delivered.length === 2);
    expect(delivered.map((d) => d.waId)).toEqual(['L1', 'L2']);
  });

  it('an outage pauses delivery without using attempts; order survives', async () => {
    let down = 25;
    const c = consumer(async (e) => {
      if (down-- > 0) throw new OutageError('chatwoot down');
      return recordingDeliver(e);
    });
    await c.start();
    const ids = Array.from({ length: 10 }, (_, i) => `O${i}`);
    for (const id of ids) await producer.enqueue(text(id, 'outage@s.whatsapp.net'));
    await until(() => delivered.length === ids.length);
    expect(delivered.map((d) => d.waId)).toEqual(ids);
    expect(await store.parked()).toEqual([]);
    expect(c.breaker.totalTrips).toBeGreaterThanOrEqual(25);
  });

  it('hands over one head per step: marked in flight in a known chat, unmarked when parked, delivered copies skipped and counted', async () => {
    const chat = 'step@s.whatsapp.net';
    const cacheKey = keys.chat(INSTANCE, chat);
    const list = `${keys.inbound(INSTANCE)}chat:${chat}`;
    await redis.hset(cacheKey, { conversationId: '5', contactId: '6', sourceId: 'src' });
    const generation = (await producer.enqueue(text('a', chat))).needsJob!.generation;
    await producer.enqueue(text('b', chat));

    // A job of another generation of the chat's flag (an old job run again) gets nothing and changes nothing.
    expect(await store.next(chat, 'g0')).toBeUndefined();
    const a = await store.next(chat, generation);
    expect(a?.head.event.message.waId).toBe('a');
    // The cache as it was before this head was marked, and the mark itself.
    expect(a?.cache).toEqual({ conversationId: '5', contactId: '6', sourceId: 'src' });
    expect(await redis.hget(cacheKey, 'inflight')).toBe('a');
    // A copy of `a` behind `b`, as a replay could put back.
    await redis.rpush(list, a!.head.raw);

    const b = await store.ack(chat, generation, a!.head, { conversationId: 5, messageId: 50 });
    expect(b?.head.event.message.waId).toBe('b');
    expect(await redis.hget(cacheKey, 'inflight')).toBe('b');
    await store.park(chat, b!.head, { message: 'refused' });
    expect(await redis.hget(cacheKey, 'inflight')).toBe('');

    // Only the delivered copy of `a` is left: skipped, counted, and the chat's flag lowered.
    expect(await store.next(chat, generation)).toBeUndefined();
    expect(await redis.llen(list)).toBe(0);
    expect((await store.stats()).duplicates).toBe(1);
    expect(await store.pendingChats()).not.toContain(chat);
  });

  it('parks a refused message at once and a failing one after its attempts; the chat goes on', async () => {
    const failures = new Map<string, number>();
    const c = consumer(async (e) => {
      const id = e.message.waId;
      if (id === 'refused') throw new RefusedError('422 invalid');
      if (id === 'flaky') {
        failures.set(id, (failures.get(id) ?? 0) + 1);
        throw new TransientError('boom');
      }
      if (id === 'once') {
        const n = (failures.get(id) ?? 0) + 1;
        failures.set(id, n);
        if (n === 1) throw new TransientError('first try fails');
      }
      return recordingDeliver(e);
    });
    await c.start();
    for (const id of ['first', 'refused', 'flaky', 'once', 'last']) await producer.enqueue(text(id, 'park@s.whatsapp.net'));
    await until(() => delivered.some((d) => d.waId === 'last'));
    expect(delivered.map((d) => d.waId)).toEqual(['first', 'once', 'last']);
    expect(failures.get('flaky')).toBe(options.attempts);
    const parked = await store.parked();
    expect(parked.map((p) => (JSON.parse(p.event) as InboundEvent).message.waId)).toEqual(['refused', 'flaky']);
    expect(parked[0]!.error.code).toBe('TEST_REFUSED');
    const stats = await store.stats();
    expect(stats.parked).toBe(2);

    // Replaying puts them back; this time they go through.
    failures.clear();
    await c.close();
    const healed = consumer(recordingDeliver);
    await healed.start();
    expect(await store.replayParked()).toEqual({ events: 2, chats: [{ chatId: 'park@s.whatsapp.net', generation: expect.stringMatching(/^g\d+$/) as string }] });
    await healed.sweep();
    await until(() => delivered.some((d) => d.waId === 'flaky'));
    expect(delivered.map((d) => d.waId)).toEqual(['first', 'once', 'last', 'refused', 'flaky']);
  });

  it('a consumer closed and re-created mid-stream loses and doubles nothing', async () => {
    const slow = async (e: InboundEvent) => {
      await new Promise((r) => setTimeout(r, 2));
      return recordingDeliver(e);
    };
    const first = consumer(slow);
    await first.start();
    const ids: string[] = [];
    const chats = ['x1', 'x2', 'x3'];
    for (let i = 0; i < 150; i++) {
      const id = `R${i}`;
      ids.push(id);
      await producer.enqueue(text(id, `${chats[i % 3]}@s.whatsapp.net`));
    }
    await until(() => delivered.length >= 20);
    await first.close();
    const midway = delivered.length;
    expect(midway).toBeLessThan(ids.length);
    for (let i = 150; i < 200; i++) {
      const id = `R${i}`;
      ids.push(id);
      await producer.enqueue(text(id, `${chats[i % 3]}@s.whatsapp.net`));
    }
    const second = consumer(slow);
    await second.start();
    await until(() => delivered.length >= ids.length);
    await until(async () => (await store.pendingChats()).length === 0);
    expect(delivered).toHaveLength(ids.length);
    expect(new Set(delivered.map((d) => d.waId)).size).toBe(ids.length);
    for (const chat of chats) {
      const order = delivered.filter((d) => d.chat === `${chat}@s.whatsapp.net`).map((d) => Number(d.waId.slice(1)));
      expect(order).toEqual([...order].sort((x, y) => x - y));
    }
  });

  it('keeps a person first seen by LID and later by number in one ordered chat', async () => {
    const c = consumer(recordingDeliver);
    const lid = '123456789012345@lid';
    const pn = '5511987654321@s.whatsapp.net';
    const byLid: InboundMessage = { ...text('L1', lid), peer: { lidJid: lid } };
    const both: InboundMessage = { ...text('L2', pn), peer: { pnJid: pn, lidJid: lid } };
    const byPn: InboundMessage = { ...text('L3', pn), peer: { pnJid: pn } };
    const r1 = await producer.enqueue(byLid);
    const r2 = await producer.enqueue(both);
    const r3 = await producer.enqueue(byPn);
    expect(r2.chatId).toBe(r1.chatId);
    expect(r3.chatId).toBe(r1.chatId);
    await c.start();
    await until(() => delivered.length === 3);
    expect(delivered.map((d) => d.waId)).toEqual(['L1', 'L2', 'L3']);
  });
});
