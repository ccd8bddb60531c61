/**
 * The inbound path end to end: a sandbox WhatsApp socket emits real
 * `proto.WebMessageInfo` upserts → SessionInbound → Redis chat lists and
 * BullMQ → relay → the real Chatwoot client → the contract-checked Chatwoot
 * double, under injected faults.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { WAMessage } from '@whiskeysockets/baileys';
import { loadConfig } from '../../src/config/load.js';
import { ChatwootClient } from '../../src/chatwoot/client.js';
import { createLogger } from '../../src/observability/logger.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { InboundPipeline } from '../../src/inbound/inbound-pipeline.js';
import type { ChatJobData } from '../../src/inbound/inbound-queue.js';
import { InstanceJobs } from '../../src/redis/instance-jobs.js';
import { SessionInbound } from '../../src/worker/session-inbound.js';
import { buildTextMessage } from '../../src/sandbox/message-builder.js';
import { SandboxSocket } from '../../src/sandbox/sandbox-socket.js';
import { linkedMemoryAuthState, silentBaileysLogger } from '../support/sandbox-auth.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { deleteKeys, randomPrefix, testRedis, testRedisUrl } from '../support/redis.js';

const log = createLogger({ level: process.env.PONTE_TEST_LOG === '1' ? 'debug' : 'silent' });

async function until(predicate: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await predicate())) await new Promise((r) => setTimeout(r, 50));
}

interface Harness {
  double: ChatwootDouble;
  redis: Redis;
  prefix: string;
  accountId: number;
  inboxId: number;
  pipeline: InboundPipeline;
  jobs: InstanceJobs<ChatJobData>;
  session: SessionInbound;
  socket: SandboxSocket;
  emit(messages: WAMessage[], type?: 'notify' | 'append'): void;
  newPipeline(): InboundPipeline;
}

async function harness(env: Record<string, string> = {}): Promise<Harness> {
  const double = await startChatwootDouble({ seed: 7 });
  const account = double.addAccount();
  const inbox = double.addInbox({ accountId: account.id, name: 'WhatsApp Vendas' });
  const redis = testRedis();
  const prefix = randomPrefix();
  const config = loadConfig({
    CHATWOOT_BASE_URL: double.url,
    CHATWOOT_API_ACCESS_TOKEN: double.token,
    CHATWOOT_API_TIMEOUT: '1000',
    WEBHOOK_SECRET: 'test-secret-0123456789',
    SERVER_HOST: '127.0.0.1',
    REDIS_URL: testRedisUrl(),
    REDIS_PREFIX: prefix,
    CHATWOOT_QUEUE_CONCURRENCY: '5',
    BULLMQ_JOB_ATTEMPTS: '3',
    BULLMQ_JOB_BACKOFF_DELAY: '50',
    BULLMQ_LOCK_DURATION_MS: '5000',
    BULLMQ_STALLED_INTERVAL_MS: '2000',
    OUTAGE_PROBE_MIN_DELAY_MS: '50',
    OUTAGE_PROBE_MAX_DELAY_MS: '1000',
    RATE_LIMIT_BACKOFF_MS: '200',
    CHATWOOT_QUEUE_WORKER_LOG_LEVEL: process.env.PONTE_TEST_LOG === '1' ? 'debug' : 'silent',
    ...env,
  });
  const chatwoot = new ChatwootClient({ baseUrl: double.url, apiAccessToken: double.token, timeoutMs: config.chatwoot.timeoutMs, idempotentRetries: 1, retryBaseDelayMs: 10 });
  const instanceKey = `${account.id}-${inbox.id}`;
  const keys = new RedisKeys(prefix);
  // The worker process's inbound queue, which every pipeline of the test shares.
  const q = config.queue;
  const jobs = new InstanceJobs<ChatJobData>({ connection: redis, prefix: keys.bullPrefix, name: 'inbound.w0', concurrency: q.concurrency, lockDurationMs: q.lockDurationMs, stalledIntervalMs: q.stalledIntervalMs, log });
  jobs.start();
  const newPipeline = () => new InboundPipeline({ config, redis, jobs, keys, chatwoot, log, instanceKey, sweepIntervalMs: 500 });
  const pipeline = newPipeline();
  const socket = new SandboxSocket({ instanceKey, auth: linkedMemoryAuthState('5511900000000'), logger: silentBaileysLogger, browser: ['Ponte', 'Chrome', '1.0'] });
  const h: Harness = {
    double,
    redis,
    prefix,
    accountId: account.id,
    inboxId: inbox.id,
    pipeline,
    socket,
    session: new SessionInbound(socket.ev, { handOver: (m, t) => h.pipeline.producer.enqueue(m, t), log }),
    emit: (messages, type = 'notify') => socket.receive(messages, type),
    newPipeline,
    jobs,
  };
  await pipeline.start();
  return h;
}

describe('inbound delivery to Chatwoot', () => {
  let h: Harness;

  afterEach(async () => {
    await h.session.stop();
    await h.pipeline.close();
    await h.jobs.close();
    await h.double.close();
    await deleteKeys(h.redis, h.prefix);
    await h.redis.quit();
  });

  describe('under faults', () => {
    beforeEach(async () => {
      h = await harness();
    });

    it('delivers 500 messages over 25 chats exactly once, in order, one contact and one conversation per person', async () => {
      const lid = '218512345678901';
      const lidPersonPn = '5511912340000';
      const brWith9 = '5521998765432';
      const brWithout9 = '552198765432';
      // 23 ordinary people, one person first by LID then by number, one Brazilian number in both forms.
      const people = Array.from({ length: 23 }, (_, i) => `5511955${String(i).padStart(6, '0')}`);
      const sent = new Map<string, string[]>(); // person → waIds in order
      const messages: WAMessage[] = [];
      for (let i = 0; i < 500; i++) {
        const slot = i % 25;
        const id = `WA${String(i).padStart(4, '0')}`;
        let msg: WAMessage;
        let person: string;
        if (slot < 23) {
          person = people[slot]!;
          msg = buildTextMessage({ fromPn: person, pushName: `Cliente ${slot}`, text: `texto ${i}`, id });
        } else if (slot === 23) {
          person = 'lid-person';
          msg = i < 250
            ? buildTextMessage({ fromLid: lid, pushName: 'Pessoa LID', text: `texto ${i}`, id })
            : buildTextMessage({ fromPn: lidPersonPn, fromLid: lid, addressing: 'pn', pushName: 'Pessoa LID', text: `texto ${i}`, id });
        } else {
          person = 'br-person';
          msg = buildTextMessage({ fromPn: i % 2 === 0 ? brWith9 : brWithout9, pushName: 'Carioca', text: `texto ${i}`, id });
        }
        messages.push(msg);
        sent.set(person, [...(sent.get(person) ?? []), id]);
      }

      const { faults } = h.double;
      faults.loseResponses({ ratio: 0.05, mode: 'status', status: 500 });
      faults.fail({ status: 502, ratio: 0.2 });
      let i = 0;
      const feed = async (until: number) => {
        for (; i < until; i++) {
          h.emit([messages[i]!], 'notify');
          if (i % 10 === 0) h.emit([messages[i]!], 'notify'); // duplicate upsert
        }
        await h.session.idle();
      };
      await feed(100);
      const stopStretch = faults.fail({ status: 429, forMs: 3000 });
      await feed(200);
      await until(async () => (await h.pipeline.store.stats()).relayed >= 150);
      stopStretch();
      faults.fail({ status: 503, forMs: 60_000 });
      await feed(500);
      await until(async () => (await h.pipeline.store.stats()).relayed >= 500);
      await until(async () => (await h.pipeline.store.pendingChats()).length === 0);

      expect(await h.pipeline.store.parked()).toEqual([]);
      const contacts = h.double.contacts(h.accountId);
      expect(contacts).toHaveLength(25);
      const conversations = h.double.conversations(h.accountId);
      expect(conversations).toHaveLength(25);
      expect(h.double.contactInboxes(h.accountId)).toHaveLength(25);
      const lidContact = contacts.find((c) => c.phone_number === `+${lidPersonPn}`);
      expect(lidContact?.identifier).toBe(`${lidPersonPn}@s.whatsapp.net`);
      expect(contacts.filter((c) => c.phone_number?.startsWith('+5521'))).toHaveLength(1);

      const allSourceIds: string[] = [];
      const byConversation = conversations.map((conv) => h.double.messages(h.accountId, conv.id).map((m) => m.source_id ?? ''));
      for (const ids of byConversation) allSourceIds.push(...ids);
      expect(allSourceIds).toHaveLength(500);
      expect(new Set(allSourceIds).size).toBe(500);
      for (const [, waIds] of sent) {
        const expected = waIds.map((id) => `WAID:${id}`);
        const conv = byConversation.find((ids) => ids.includes(expected[0]!));
        expect(conv).toEqual(expected);
      }
      if (h.double.violations.length) console.log(h.double.violations);
      expect(h.double.violations).toEqual([]);
      // The faults did happen: answers lost after applying, 5xx, 429s.
      const injected = faults.injected();
      expect(injected.lost).toBeGreaterThan(0);
      expect(injected.failed).toBeGreaterThan(0);
      expect(injected.rateLimited).toBeGreaterThan(0);
    }, 240_000);
  });

  describe('restarts', () => {
    beforeEach(async () => {
      h = await harness();
    });

    it('a consumer closed and re-created mid-stream (jobs in flight) loses and doubles nothing', async () => {
      h.double.faults.slow(5);
      const ids: string[] = [];
      for (let i = 0; i < 120; i++) {
        const id = `RS${i}`;
        ids.push(id);
        h.emit([buildTextMessage({ fromPn: `55119770000${i % 4}`, text: `t${i}`, id })]);
      }
      await h.session.idle();
      await until(async () => (await h.pipeline.store.stats()).relayed >= 15);
      await h.pipeline.close();
      h.pipeline = h.newPipeline();
      await h.pipeline.start();
      await until(async () => (await h.pipeline.store.stats()).relayed >= 120);
      const all = h.double.conversations(h.accountId).flatMap((c) => h.double.messages(h.accountId, c.id).map((m) => m.source_id));
      expect(all).toHaveLength(120);
      expect(new Set(all)).toEqual(new Set(ids.map((id) => `WAID:${id}`)));
    }, 60_000);
  });

  describe('steady state', () => {
    beforeEach(async () => {
      h = await harness();
    });

    it('costs exactly one Chatwoot call per message for a known chat', async () => {
      h.emit([buildTextMessage({ fromPn: '5511966660000', pushName: 'Ana', text: 'primeira', id: 'S0' })]);
      await until(async () => (await h.pipeline.store.stats()).relayed >= 1);
      h.double.calls.reset();
      for (let i = 1; i <= 20; i++) h.emit([buildTextMessage({ fromPn: '5511966660000', pushName: 'Ana', text: `m${i}`, id: `S${i}` })]);
      await until(async () => (await h.pipeline.store.stats()).relayed >= 21);
      expect(h.double.calls.count()).toBe(20);
      expect(Object.keys(h.double.calls.byRoute())).toEqual(['POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages']);
    });

    it('relays phone-sent messages as outgoing external echoes, ignores status broadcasts, and names the contact from the push name', async () => {
      h.emit([
        buildTextMessage({ fromPn: '5511933330000', pushName: 'Bruna', text: 'oi', id: 'E1' }),
        buildTextMessage({ fromPn: '5511933330000', fromMe: true, pushName: 'Loja', text: 'olá, Bruna', id: 'E2' }),
        buildTextMessage({ fromPn: '5511933330000', group: { jid: 'status@broadcast' }, text: 'story', id: 'E3' }),
      ]);
      await until(async () => (await h.pipeline.store.stats()).relayed >= 2);
      await h.session.idle();
      const [contact] = h.double.contacts(h.accountId);
      expect(contact?.name).toBe('Bruna');
      const [conv] = h.double.conversations(h.accountId);
      const msgs = h.double.messages(h.accountId, conv!.id);
      expect(msgs.map((m) => [m.source_id, m.message_type, m.content_attributes?.external_echo ?? false])).toEqual([
        ['WAID:E1', 'incoming', false],
        ['WAID:E2', 'outgoing', true],
      ]);
    });

    it('merges a contact that holds the number\'s source id in the inbox instead of failing on it', async () => {
      const cw = async (path: string, body: unknown) =>
        (await fetch(`${h.double.url}/api/v1/accounts/${h.accountId}${path}`, { method: 'POST', headers: { api_access_token: h.double.token, 'content-type': 'application/json' }, body: JSON.stringify(body) })).json() as Promise<{ payload: { contact: { id: number } } }>;
      // One contact made by hand with the number, another (made by another bridge) owning the JID as source id.
      const byHand = await cw('/contacts', { name: 'Dora (manual)', phone_number: '+5511977770000' });
      const other = await cw('/contacts', { inbox_id: h.inboxId, name: 'Dora (bridge)', source_id: '5511977770000@s.whatsapp.net' });
      h.emit([buildTextMessage({ fromPn: '5511977770000', pushName: 'Dora', text: 'oi', id: 'M1' })]);
      await until(async () => (await h.pipeline.store.stats()).relayed >= 1);
      const ids = h.double.contacts(h.accountId).map((c) => c.id);
      expect(ids).toContain(byHand.payload.contact.id);
      expect(ids).not.toContain(other.payload.contact.id);
      expect(h.double.contactInboxes(h.accountId)).toHaveLength(1);
      const [conv] = h.double.conversations(h.accountId);
      expect(conv?.contact_id).toBe(byHand.payload.contact.id);
      expect(h.double.messages(h.accountId, conv!.id).map((m) => m.source_id)).toEqual(['WAID:M1']);
    });

    it('resolves again when Chatwoot lost the conversation (404), creating no duplicate contact', async () => {
      h.emit([buildTextMessage({ fromPn: '5511944440000', text: 'um', id: 'N1' })]);
      await until(async () => (await h.pipeline.store.stats()).relayed >= 1);
      const [conv] = h.double.conversations(h.accountId);
      h.double.deleteConversation(h.accountId, conv!.id);
      h.emit([buildTextMessage({ fromPn: '5511944440000', text: 'dois', id: 'N2' })]);
      await until(async () => (await h.pipeline.store.stats()).relayed >= 2);
      expect(h.double.contacts(h.accountId)).toHaveLength(1);
      const convs = h.double.conversations(h.accountId);
      expect(convs).toHaveLength(1);
      expect(h.double.messages(h.accountId, convs[0]!.id).map((m) => m.source_id)).toEqual(['WAID:N2']);
    });
  });
});
