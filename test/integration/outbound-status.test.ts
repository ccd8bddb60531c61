/** Agent messages' ticks: the status Ponte reports never goes back, and an outage delays a tick, never fails the message. */
import { afterAll, describe, expect, it } from 'vitest';
import { ChatwootUnavailableError } from '../../src/chatwoot/errors.js';
import type { ChatwootClientLike, CwMessage, CwMessageStatus } from '../../src/chatwoot/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { OutboundRecords } from '../../src/outbound/outbound-records.js';
import { StatusReporter } from '../../src/outbound/status-reporter.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { until } from '../support/daemon.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const redis = testRedis();
const prefix = randomPrefix();
const keys = new RedisKeys(prefix);
const log = createLogger({ level: 'silent' });

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

/** Chatwoot's message PATCH: records what it was told, slowly when asked, refusing while `down`. */
function chatwoot(o: { delayMs?: number; down?: () => boolean } = {}) {
  const patches: Array<{ messageId: number; status: CwMessageStatus; externalError?: string }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const client = {
    updateMessageStatus: async (_a: number, _c: number, messageId: number, status: CwMessageStatus, externalError?: string): Promise<CwMessage> => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
        if (o.down?.()) throw new ChatwootUnavailableError('Chatwoot PATCH: connection failed (ECONNREFUSED)', { method: 'PATCH', route: 'messages/{id}' });
        patches.push({ messageId, status, ...(externalError ? { externalError } : {}) });
        return { id: messageId, content: null, message_type: 1, source_id: null, status };
      } finally {
        inFlight -= 1;
      }
    },
  } as unknown as ChatwootClientLike;
  return { client, patches, maxInFlight: () => maxInFlight };
}

const part = (messageId: number, p = 0) => ({ messageId, conversationId: 7, part: p, jid: '5511911112222@s.whatsapp.net' });

describe('agent message status', () => {
  it('keeps the highest status: read before delivered stays read, and Chatwoot is never told a lower one', async () => {
    const records = new OutboundRecords(redis, keys, '1-1');
    const cw = chatwoot({ delayMs: 30 });
    const reporter = new StatusReporter({ records, chatwoot: cw.client, accountId: 1, log, retryDelayMs: { min: 10, max: 50 } });
    await records.recordSent(part(101), 'WA101', undefined);
    for (const s of ['sent', 'read', 'delivered', 'sent'] as const) if (await records.raise(101, 7, s)) reporter.request(101);
    await until('read reported', async () => (await records.state(101)).reported === 'read');
    await reporter.close();
    const told = cw.patches.filter((p) => p.messageId === 101).map((p) => p.status);
    expect(told[told.length - 1]).toBe('read');
    expect(told).not.toContain('delivered');
    // One PATCH at a time per message, so Chatwoot cannot apply them out of order.
    expect(cw.maxInFlight()).toBe(1);
  });

  it('never marks failed a message WhatsApp accepted, and a failure before that can be replaced by a later send', async () => {
    const records = new OutboundRecords(redis, keys, '1-2');
    expect(await records.raise(201, 7, 'failed', 'the number is not connected')).toBe(true);
    expect(await records.state(201)).toMatchObject({ failed: true, want: 'failed', reason: 'the number is not connected', accepted: false });
    // A Retry that went through.
    await records.recordSent(part(201), 'WA201', undefined);
    expect(await records.raise(201, 7, 'sent')).toBe(true);
    expect(await records.state(201)).toMatchObject({ failed: false, want: 'sent', accepted: true });
    expect(await records.raise(201, 7, 'failed', 'too late')).toBe(false);
    expect((await records.state(201)).want).toBe('sent');
  });

  it('a Chatwoot outage delays the tick, retried on its own until Chatwoot takes it', async () => {
    const records = new OutboundRecords(redis, keys, '1-3');
    let down = true;
    const cw = chatwoot({ down: () => down });
    const reporter = new StatusReporter({ records, chatwoot: cw.client, accountId: 1, log, retryDelayMs: { min: 10, max: 40 } });
    await records.recordSent(part(301), 'WA301', undefined);
    if (await records.raise(301, 7, 'sent')) reporter.request(301);
    if (await records.raise(301, 7, 'delivered')) reporter.request(301);
    expect(await records.unreported()).toContain(301);
    await new Promise((r) => setTimeout(r, 100));
    expect(cw.patches).toEqual([]);
    down = false;
    await until('reported after the outage', async () => (await records.state(301)).reported === 'delivered');
    expect(cw.patches.map((p) => p.status)).toEqual(['delivered']);
    expect(await records.unreported()).not.toContain(301);
    await reporter.close();
  });

  it('a tick left unreported by a stop is reported by the next reporter', async () => {
    const records = new OutboundRecords(redis, keys, '1-4');
    const first = new StatusReporter({ records, chatwoot: chatwoot({ down: () => true }).client, accountId: 1, log, retryDelayMs: { min: 10, max: 20 } });
    await records.recordSent(part(401), 'WA401', undefined);
    if (await records.raise(401, 7, 'read')) first.request(401);
    await first.close();
    const cw = chatwoot();
    const next = new StatusReporter({ records, chatwoot: cw.client, accountId: 1, log, retryDelayMs: { min: 10, max: 20 } });
    await next.resume();
    await until('reported by the next run', async () => (await records.state(401)).reported === 'read');
    expect(cw.patches.map((p) => p.status)).toEqual(['read']);
    await next.close();
  });

  it('a message of several parts shows the lowest status of its parts', async () => {
    const records = new OutboundRecords(redis, keys, '1-5');
    await records.recordSent(part(501, 0), 'WA501A', undefined);
    await records.recordSent(part(501, 1), 'WA501B', undefined);
    expect(await records.receipt(part(501, 0), 4)).toBeUndefined();
    expect(await records.receipt(part(501, 1), 3)).toBe('delivered');
    expect(await records.receipt(part(501, 1), 4)).toBe('read');
    // A late delivery receipt does not lower a part that was read.
    expect(await records.receipt(part(501, 0), 3)).toBe('read');
  });
});
