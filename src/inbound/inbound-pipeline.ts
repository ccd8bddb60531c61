/** One instance's inbound flow wired end to end: producer, store, queue, consumer, relay. */
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import type { ChatwootClientLike } from '../chatwoot/types.js';
import { classifyChatwootFailure } from './chatwoot-failures.js';
import { ContactBook } from './contact-book.js';
import { ContactNames, type ContactsReport } from './contact-names.js';
import { ContactResolver } from './contact-resolver.js';
import { InboundConsumer } from './inbound-consumer.js';
import { Relay } from './relay.js';
import type { MediaFetcher } from './render.js';
import { canonicalBrazilian, digitsOf } from '../lib/phone.js';
import type { InboundEvent, InboundMessage } from '../model/inbound.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import { type ChatJobData, scheduleChats } from './inbound-queue.js';
import type { InstanceJobs } from '../redis/instance-jobs.js';
import { InboundProducer } from './inbound-producer.js';
import { InboundStore } from './inbound-store.js';
import type { RedisKeys } from '../redis/keys.js';
import { ConversationPacer } from './conversation-pacer.js';
import { HistoryImport } from './history-import.js';
import type { ImportReport } from '../model/history-import.js';
import { HistoryStore, type OldestMessage } from './history-store.js';

export interface InboundPipelineDeps {
  config: Readonly<Config>;
  /** Shared connection for commands and BullMQ (`maxRetriesPerRequest: null`). */
  redis: Redis;
  /** The worker process's inbound jobs (one queue for all its instances). */
  jobs: InstanceJobs<ChatJobData>;
  keys: RedisKeys;
  chatwoot: ChatwootClientLike;
  log: Logger;
  instanceKey: string;
  /** How often chats holding events are re-scheduled; defaults to the stalled-job interval. */
  sweepIntervalMs?: number;
  /** How long after a history set the automatic import starts (`IMPORT_SETTLE_MS` by default). */
  historySettleMs?: number;
  /** This number's own JIDs (for polls sent from the phone). */
  ownJids?: () => string[];
  /** A group's subject through the instance's current socket. */
  groupSubject?: (jid: string) => Promise<string | undefined>;
  /** Downloads media through the instance's current socket. */
  fetchMedia?: MediaFetcher;
  /** Called after each message reached Chatwoot. */
  onDelivered?: (event: InboundEvent, target: { conversationId: number; messageId: number }) => void;
  /** What the history import needs of the instance's session. */
  history?: {
    /** The session is open (the import runs only then). */
    canRun(): boolean;
    /** Asks the phone for history older than `oldest` in its chat; false when it cannot now. */
    requestOlder?: (oldest: OldestMessage, count: number) => Promise<boolean>;
    report(r: ImportReport): void;
  };
  /** Reports the end of a contacts run (names from WhatsApp, `erga contacts`). */
  reportContacts?: (r: ContactsReport) => void;
}

/**
 * One instance's inbound path, wired: producer (fed by the session) → Redis
 * chat lists and the worker process's BullMQ queue → consumer → relay →
 * Chatwoot.
 */
export class InboundPipeline {
  readonly store: InboundStore;
  readonly producer: InboundProducer;
  readonly consumer: InboundConsumer;
  readonly resolver: ContactResolver;
  readonly history: HistoryImport;
  readonly names: ContactNames;
  private readonly jobs: InstanceJobs<ChatJobData>;
  private closing: Promise<void> | undefined;

  constructor(deps: InboundPipelineDeps) {
    const { config, redis, keys, chatwoot, instanceKey } = deps;
    const ref = parseInstanceKey(instanceKey);
    if (!ref) throw new RangeError(`invalid instance key ${instanceKey}`);
    const log = deps.log.child({ module: 'inbound', instanceId: instanceKey, inboxId: ref.inboxId });
    log.level = config.queue.logLevel;
    this.store = new InboundStore({ redis, keys, instanceKey });
    this.jobs = deps.jobs;
    this.producer = new InboundProducer(this.store, deps.jobs.queue, chatAliases);
    const book = new ContactBook(redis, keys, instanceKey);
    const resolver = new ContactResolver({ client: chatwoot, redis, keys, instance: { instanceKey, ...ref }, log, book, ...(deps.groupSubject ? { groupSubject: deps.groupSubject } : {}) });
    this.resolver = resolver;
    this.names = new ContactNames({ book, resolver, client: chatwoot, accountId: ref.accountId, log: log.child({ module: 'contacts' }), report: (r) => deps.reportContacts?.(r) });
    // One pacer for live delivery and the history import: both together stay under Chatwoot's per-conversation limit.
    const pacer = new ConversationPacer();
    const relay = new Relay({
      pacer,
      client: chatwoot,
      resolver,
      redis,
      keys,
      accountId: ref.accountId,
      instanceKey,
      log,
      maxMediaBytes: config.inbound.mediaMaxBytes,
      ...(deps.fetchMedia ? { fetchMedia: deps.fetchMedia } : {}),
      ...(deps.ownJids ? { ownJids: deps.ownJids } : {}),
    });
    const q = config.queue;
    this.consumer = new InboundConsumer({
      store: this.store,
      jobs: deps.jobs,
      deliver: relay.deliver,
      classify: classifyChatwootFailure,
      log,
      ...(deps.onDelivered ? { onDelivered: deps.onDelivered } : {}),
      options: {
        attempts: q.attempts,
        backoffDelayMs: q.backoffDelayMs,
        outageMinDelayMs: q.outageProbeMinDelayMs,
        outageMaxDelayMs: q.outageProbeMaxDelayMs,
        rateLimitDelayMs: q.rateLimitDelayMs,
        sweepIntervalMs: deps.sweepIntervalMs ?? q.stalledIntervalMs,
      },
    });
    const h = deps.history;
    this.history = new HistoryImport({
      history: new HistoryStore(redis, keys, instanceKey),
      inbound: this.store,
      resolver,
      relay,
      client: chatwoot,
      pacer,
      classify: classifyChatwootFailure,
      aliasesOf: chatAliases,
      accountId: ref.accountId,
      log: log.child({ module: 'history' }),
      options: {
        autoDays: config.inbound.historyImportDays,
        attempts: q.attempts,
        backoffDelayMs: q.backoffDelayMs,
        outageMinDelayMs: q.outageProbeMinDelayMs,
        outageMaxDelayMs: q.outageProbeMaxDelayMs,
        rateLimitDelayMs: q.rateLimitDelayMs,
        ...(deps.historySettleMs !== undefined ? { settleMs: deps.historySettleMs } : {}),
      },
      canRun: () => h?.canRun() ?? false,
      ...(h?.requestOlder ? { requestOlder: h.requestOlder } : {}),
      report: (r) => h?.report(r),
    });
  }

  async start(): Promise<void> {
    await this.consumer.start();
    await this.names.start();
    await this.history.start();
  }

  /** Sends up to `limit` parked messages again, each at the end of its chat. */
  async replayParked(limit?: number): Promise<{ replayed: number }> {
    const { events, chats } = await this.store.replayParked(limit);
    await scheduleChats(this.jobs.queue, this.store.instanceKey, chats);
    return { replayed: events };
  }

  /** Stops consuming (jobs in flight finish their current message). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.history.close();
      await this.names.close();
      await this.consumer.close();
    })();
    return this.closing;
  }
}

/**
 * The keys a message's chat is ordered by. Direct chats are keyed by the
 * person: the canonical phone-number JID (Brazilian mobiles in their 13-digit
 * form) and the LID, so both addresses of one person land in one chat.
 */
export function chatAliases(message: InboundMessage): { pn?: string; lid?: string; chatId: string } {
  if (message.chatKind === 'group') return { chatId: message.chatId };
  const pn = message.peer.pnJid ? `${canonicalBrazilian(digitsOf(message.peer.pnJid))}@s.whatsapp.net` : undefined;
  const lid = message.peer.lidJid;
  return { ...(pn ? { pn } : {}), ...(lid ? { lid } : {}), chatId: pn ?? lid ?? message.chatId };
}
