/** Everything one instance runs in its worker: its WhatsApp session, inbound pipeline and outbound consumer, wired. */
import type { ILogger } from '@whiskeysockets/baileys/lib/Utils/logger.js';
import { BufferJSON, type Contact, type WACallEvent, type WAMessage } from '@whiskeysockets/baileys';
import type { Redis } from 'ioredis';
import type { ChatwootClientLike } from '../chatwoot/types.js';
import type { WorkerToPrimary } from '../cluster/ipc.js';
import type { InstanceStatus } from '../model/instance.js';
import type { Config } from '../config/schema.js';
import { WhatsAppUnavailableError } from '../inbound/relay-errors.js';
import { InstanceLease, sessionHolderId } from './lease.js';
import { coerceError } from '../lib/errors.js';
import type { InboundEvent, InboundMessage } from '../model/inbound.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import type { AttachmentFetcher } from '../outbound/attachment-fetch.js';
import { OutboundConsumer } from '../outbound/outbound-consumer.js';
import type { RedisKeys } from '../redis/keys.js';
import { readInstanceSettings } from '../redis/instance-settings.js';
import type { AuthStore } from '../whatsapp/auth-store.js';
import { normalizeCall } from '../whatsapp/normalize.js';
import { WhatsAppSession } from '../whatsapp/session.js';
import type { SocketFactory, WaSocket } from '../whatsapp/socket.js';
import { InboundPipeline } from '../inbound/inbound-pipeline.js';
import type { ChatJobData } from '../inbound/inbound-queue.js';
import type { ConversationJobData } from '../outbound/outbound-queue.js';
import type { InstanceJobs } from '../redis/instance-jobs.js';
import { ApiSender } from './api-send.js';
import { proactiveCheck } from './proactive.js';
import { OptOuts, type SendSafetyStore } from '../redis/send-safety.js';
import { chatJids, OptOutHandler } from './opt-out.js';
import { ownSendIds } from './own-sends.js';
import { waContacts } from './session-contacts.js';
import { SessionHistory } from './session-history.js';
import { SessionInbound } from './session-inbound.js';

export interface InstanceRuntimeDeps {
  config: Readonly<Config>;
  redis: Redis;
  keys: RedisKeys;
  chatwoot: ChatwootClientLike;
  auth: AuthStore;
  factory: SocketFactory;
  /** Downloads agents' attachments (one per worker: its keep-alive connections serve every instance). */
  attachments: AttachmentFetcher;
  /** The lease owner of this worker slot (`host:primary-pid:slot:`); each session adds its own token. */
  leaseOwner: string;
  /** The worker process's inbound and outbound jobs, shared by its instances. */
  inboundJobs: InstanceJobs<ChatJobData>;
  outboundJobs: InstanceJobs<ConversationJobData>;
  /** Makes an inbound event durable: Redis, or the worker's journal while Redis is away. */
  handOver(event: InboundEvent): Promise<unknown>;
  log: Logger;
  baileysLogger: ILogger;
  send(message: WorkerToPrimary): void;
}

/**
 * One instance in its worker: the WhatsApp session, the binding of each new
 * socket's events (messages, receipts, calls, group renames) to the inbound
 * pipeline and the outbound consumer, and the status it reports.
 */
export class InstanceRuntime {
  readonly session: WhatsAppSession;
  readonly pipeline: InboundPipeline;
  readonly outbound: OutboundConsumer;
  /** `POST /api/send` for this instance. */
  readonly apiSend: ApiSender;
  private inbound: SessionInbound | undefined;
  private history: SessionHistory | undefined;
  private qr: string | undefined;
  private lastMessageAtMs: number | undefined;
  /** Ids of messages Ponte sent, so their echoes are not relayed back (bounded: an echo comes within seconds). */
  private readonly ownSends = ownSendIds();
  private readonly log: Logger;
  private readonly optOut: OptOutHandler;
  private readonly safety: SendSafetyStore;

  constructor(
    readonly instanceKey: string,
    private readonly deps: InstanceRuntimeDeps,
  ) {
    const log = (this.log = deps.log.child({ instanceId: instanceKey }));
    const lease = new InstanceLease(deps.redis, deps.keys, instanceKey, sessionHolderId(deps.leaseOwner), () => this.session.leaseLost(), {
      ttlMs: deps.config.whatsapp.leaseTtlMs,
      ownerPrefix: deps.leaseOwner,
    });
    this.session = new WhatsAppSession({
      instanceKey,
      factory: deps.factory,
      auth: deps.auth,
      lease,
      log: log.child({ module: 'session' }),
      baileysLogger: deps.baileysLogger.child({ instanceId: instanceKey }),
      browser: [deps.config.whatsapp.browserName, 'Chrome', '124.0'],
      wsUrl: deps.config.whatsapp.wsUrl,
      getMessage: (key) => this.outbound.sentMessage(key),
      reconnectDelayMs: deps.config.whatsapp.reconnectDelayMs,
      maxQrs: deps.config.whatsapp.maxQrSendAttempts,
      // A lease another process holds (a host that died, or the one handing this number over) is looked at again often: it opens here as soon as it is free.
      leaseRetryMs: Math.max(200, Math.min(1000, Math.floor(deps.config.whatsapp.leaseTtlMs / 5))),
    });
    this.pipeline = new InboundPipeline({
      config: deps.config,
      jobs: deps.inboundJobs,
      redis: deps.redis,
      keys: deps.keys,
      chatwoot: deps.chatwoot,
      log,
      instanceKey,
      ownJids: () => this.session.ownJids(),
      groupSubject: (jid) => this.session.currentSocket?.groupSubject(jid) ?? Promise.resolve(undefined),
      fetchMedia: async (ref) => {
        const socket = this.session.currentSocket;
        if (!socket || this.session.state !== 'open') throw new WhatsAppUnavailableError();
        return socket.downloadMedia(JSON.parse(ref, BufferJSON.reviver) as WAMessage);
      },
      onDelivered: (event, target) => this.onDelivered(event.message, target.conversationId),
      history: {
        // Only while the session is open: it holds the number's lease then, and media can be downloaded.
        canRun: () => this.session.state === 'open',
        requestOlder: async (oldest, count) => {
          const socket = this.session.currentSocket;
          if (!socket?.fetchMessageHistory || this.session.state !== 'open') return false;
          await socket.fetchMessageHistory(count, oldest.key, oldest.timestampS * 1000);
          return true;
        },
        report: (r) => deps.send({ type: 'event', instanceKey, event: 'import', data: { ...r } }),
      },
      reportContacts: (r) => deps.send({ type: 'event', instanceKey, event: 'contacts', data: { ...r } }),
    });
    this.outbound = new OutboundConsumer({
      config: deps.config,
      jobs: deps.outboundJobs,
      redis: deps.redis,
      keys: deps.keys,
      instanceKey,
      accountId: parseInstanceKey(instanceKey)!.accountId,
      chatwoot: deps.chatwoot,
      attachments: deps.attachments,
      session: this.session,
      ownSend: (waId) => this.ownSends.set(waId, true),
      botOptionsStyle: async () => (await readInstanceSettings(deps.redis, deps.keys, instanceKey)).botOptionsStyle,
      alert: (text) => deps.send({ type: 'event', instanceKey, event: 'alert', data: { text } }),
      log: log.child({ module: 'outbound' }),
    });
    this.apiSend = new ApiSender({
      instanceKey,
      accountId: parseInstanceKey(instanceKey)!.accountId,
      redis: deps.redis,
      keys: deps.keys,
      chatwoot: deps.chatwoot,
      attachments: deps.attachments,
      resolver: this.pipeline.resolver,
      socket: () => (this.session.state === 'open' ? this.session.currentSocket : undefined),
      mayContact: proactiveCheck(new OptOuts(deps.redis, deps.keys), instanceKey),
      mediaTimeoutMs: deps.config.outbound.mediaTimeoutMs,
      log: log.child({ module: 'send-api' }),
    });
    this.safety = this.outbound.safety.store;
    this.optOut = new OptOutHandler({
      config: deps.config,
      redis: deps.redis,
      keys: deps.keys,
      instanceKey,
      accountId: parseInstanceKey(instanceKey)!.accountId,
      chatwoot: deps.chatwoot,
      socket: () => (this.session.state === 'open' ? this.session.currentSocket : undefined),
      log: log.child({ module: 'opt-out' }),
    });
    this.session.on('socket', (socket) => this.bind(socket));
    this.session.on('qr', (qr, n) => {
      this.qr = qr;
      deps.send({ type: 'event', instanceKey, event: 'qr', data: { qr, n, max: deps.config.whatsapp.maxQrSendAttempts } });
    });
    this.session.on('open', (phone) => {
      this.qr = undefined;
      this.pipeline.history.wake();
      deps.send({ type: 'event', instanceKey, event: 'open', data: { phone } });
    });
    this.session.on('state', (state, detail) => {
      if (state !== 'awaiting_scan') this.qr = undefined;
      // Unlinked: the history kept for this number never goes to another link.
      if (state === 'logged_out') void this.pipeline.history.clear().catch((err: unknown) => log.warn({ err: coerceError(err) }, 'could not forget the kept history'));
      deps.send({ type: 'event', instanceKey, event: 'state', data: { state, ...(detail ? { detail } : {}) } });
    });
    this.session.on('alert', (text) => deps.send({ type: 'event', instanceKey, event: 'alert', data: { text } }));
  }

  private handOver(message: InboundMessage, receivedAtMs = Date.now()): Promise<unknown> {
    // The customer wrote: agents' messages to this chat are replies for 24 h (never limited). Never holds the hand-over up.
    if (!message.fromMe && message.chatKind === 'direct' && message.content.kind !== 'call') {
      const atMs = Math.min(receivedAtMs, message.timestampS * 1000 || receivedAtMs);
      void this.safety.noteIncoming(chatJids(message), atMs).catch((err: unknown) => this.log.warn({ err: coerceError(err) }, 'could not record when the customer wrote'));
    }
    return this.deps.handOver({ instanceKey: this.instanceKey, receivedAtMs, message });
  }

  /** A new socket: its events feed this instance's pipeline and consumer. */
  private bind(socket: WaSocket): void {
    const log = this.log;
    socket.ev.on('messages.upsert', ({ messages }) => {
      for (const m of messages) {
        // rc14 folds a receipt that arrives within its buffer window into the echo of the send itself.
        if (m.key.fromMe && m.key.id && this.ownSends.has(m.key.id) && typeof m.status === 'number') this.receipt(m.key.id, m.status);
      }
    });
    socket.ev.on('messages.update', (updates) => {
      for (const { key, update } of updates) {
        if (!key.fromMe || !key.id || typeof update.status !== 'number') continue;
        // An error ack (status ERROR, the code first in the stub): WhatsApp took the send, then refused it.
        const stub = (update as { messageStubParameters?: unknown }).messageStubParameters;
        if (Number(update.status) === 0) this.errorAck(key.id, Array.isArray(stub) && stub.length > 0 ? String(stub[0]) : 'unknown');
        else this.receipt(key.id, update.status);
      }
    });
    socket.ev.on('connection.update', (u) => {
      const lock = u.reachoutTimeLock;
      if (!lock) return;
      const until = lock.timeEnforcementEnds ? new Date(lock.timeEnforcementEnds).getTime() : undefined;
      void this.outbound.reachoutLock(until !== undefined && Number.isFinite(until) ? until : undefined, !lock.isActive).catch((err: unknown) => log.warn({ err: coerceError(err) }, 'could not record the reach-out lock'));
    });
    socket.ev.on('message-capping.update', (info) => {
      void this.outbound.newChatCap(info).catch((err: unknown) => log.warn({ err: coerceError(err) }, "could not record WhatsApp's new-chat cap"));
    });
    socket.ev.on('groups.update', (updates) => {
      for (const u of updates) {
        if (!u.id || !u.subject) continue;
        void this.pipeline.resolver.renameGroup(u.id, u.subject).catch((err: unknown) => log.warn({ err: coerceError(err), group: u.id }, 'could not rename the group contact'));
      }
    });
    // The names WhatsApp knows for the number's contacts, as they change.
    const contactsChanged = (list: ReadonlyArray<Partial<Contact>>): void => {
      void waContacts(list, { pnForLid: (lid) => socket.pnForLid(lid), ownJids: () => this.session.ownJids(), log })
        .then((people) => this.pipeline.names.receive(people, 'live'))
        .catch((err: unknown) => log.warn({ err: coerceError(err) }, 'could not keep the contacts WhatsApp sent'));
    };
    socket.ev.on('contacts.upsert', contactsChanged);
    socket.ev.on('contacts.update', contactsChanged);
    socket.ev.on('call', (calls) => {
      for (const call of calls) void this.onCall(socket, call).catch((err: unknown) => log.warn({ err: coerceError(err), callId: call.id }, 'could not report a call'));
    });
    const previous = this.inbound;
    this.inbound = new SessionInbound(socket.ev, {
      handOver: (m, t) => this.handOver(m, t),
      log,
      isOwnSend: (waId) => this.ownSends.has(waId),
      pnForLid: (lid) => socket.pnForLid(lid),
      ignoreGroups: this.ignoresGroups,
    });
    void previous?.stop();
    const previousHistory = this.history;
    this.history = new SessionHistory(socket.ev, {
      accept: (messages, oldest) => this.pipeline.history.receive(messages, oldest),
      contacts: async (list) => this.pipeline.names.receive(await waContacts(list, { pnForLid: (lid) => socket.pnForLid(lid), ownJids: () => this.session.ownJids(), log }), 'history'),
      log,
      pnForLid: (lid) => socket.pnForLid(lid),
      ignoreGroups: this.ignoresGroups,
    });
    void previousHistory?.stop();
  }

  private get ignoresGroups(): boolean {
    const ignored = this.deps.config.inbound.groupsIgnored;
    return ignored.includes('all') || ignored.includes(this.instanceKey);
  }

  private errorAck(waId: string, code: string): void {
    void this.outbound.onErrorAck(waId, code).catch((err: unknown) => this.log.warn({ err: coerceError(err), waId }, 'could not record a refused send'));
  }

  private receipt(waId: string, status: number): void {
    void this.outbound.onReceipt(waId, status).catch((err: unknown) => this.log.warn({ err: coerceError(err), waId }, 'could not report a receipt'));
  }

  /** A customer's message reached a conversation: it waits there to be marked read when an agent answers. */
  private onDelivered(message: InboundMessage, conversationId: number): void {
    this.lastMessageAtMs = Date.now();
    void this.optOut.onDelivered(message, conversationId).catch((err: unknown) => this.log.warn({ err: coerceError(err), waId: message.waId }, 'could not handle an opt-out'));
    if (message.fromMe || message.chatKind !== 'direct' || !message.remoteJid || message.content.kind === 'call') return;
    void this.outbound.unread
      .add(conversationId, { remoteJid: message.remoteJid, id: message.waId, fromMe: false })
      .catch((err: unknown) => this.log.warn({ err: coerceError(err), waId: message.waId }, 'could not record an unread message'));
  }

  /** A missed or rejected call leaves a line in the caller's conversation; calls may be declined automatically (CALLS_REJECT). */
  private async onCall(socket: WaSocket, call: WACallEvent): Promise<void> {
    let status: 'missed' | 'rejected' | undefined;
    if (call.status === 'offer' && this.deps.config.inbound.rejectCalls && !call.isGroup) {
      await socket.rejectCall(call.id, call.from);
      status = 'rejected';
    } else if (call.status === 'timeout') status = 'missed';
    if (!status) return;
    const message = normalizeCall(call, status);
    if (message) await this.handOver(message);
  }

  /** Resolves once every message the current socket delivered so far is stored. */
  inboundIdle(): Promise<void> {
    return this.inbound?.idle() ?? Promise.resolve();
  }

  /** Resolves once every history set the current socket delivered so far is kept. */
  historyIdle(): Promise<void> {
    return this.history?.idle() ?? Promise.resolve();
  }

  async start(): Promise<void> {
    await this.pipeline.start();
    await this.outbound.start();
    await this.session.start();
  }

  /** Closes the socket (never unlinking), lets in-flight deliveries and sends finish, stops consuming. */
  async stop(): Promise<void> {
    const step = (what: string, p: Promise<unknown>) => p.catch((err: unknown) => this.log.warn({ err: coerceError(err) }, `${what} failed while stopping`));
    await step('session stop', this.session.stop());
    await step('inbound hand-over', this.inbound?.stop() ?? Promise.resolve());
    await step('history hand-over', this.history?.stop() ?? Promise.resolve());
    await step('outbound close', this.outbound.close());
    await step('inbound close', this.pipeline.close());
  }

  async status(): Promise<InstanceStatus> {
    const [stats, pending, outPending, outStats, historyImport, contactsRun, safety] = await Promise.all([
      this.pipeline.store.stats(),
      this.pipeline.store.depth(),
      this.outbound.pending(),
      this.deps.redis.hmget(this.deps.keys.stats(this.instanceKey), 'sent', 'failed'),
      this.pipeline.history.status(),
      this.pipeline.names.status(),
      this.outbound.safetyStatus(),
    ]);
    const s = this.session;
    return {
      instanceKey: this.instanceKey,
      state: s.state,
      ...(s.phone ? { phone: s.phone } : {}),
      ...(this.qr ? { qr: this.qr } : {}),
      qrCount: s.qrCount,
      ...(s.lastDisconnect ? { lastDisconnect: s.lastDisconnect } : {}),
      inbound: { received: stats.received, relayed: stats.relayed, parked: stats.parked, retried: stats.retried, pending },
      outbound: { sent: Number(outStats[0] ?? 0), failed: Number(outStats[1] ?? 0), pending: outPending, ...safety },
      ...(this.lastMessageAtMs ? { lastMessageAtMs: this.lastMessageAtMs } : {}),
      ...(historyImport ? { import: historyImport } : {}),
      ...(contactsRun ? { contacts: contactsRun } : {}),
    };
  }
}
