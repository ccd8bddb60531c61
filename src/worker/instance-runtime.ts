import type { Redis } from 'ioredis';
import type { ILogger } from '@whiskeysockets/baileys/lib/Utils/logger.js';
import { BufferJSON, type WACallEvent, type WAMessage, type WAMessageKey, jidNormalizedUser } from '@whiskeysockets/baileys';
import type { WaSocket } from '../whatsapp/socket.js';
import type { WaPerson } from '../model/inbound.js';
import type { ChatwootClientLike } from '../chatwoot/types.js';
import type { InstanceStatus, WorkerToPrimary } from '../cluster/ipc.js';
import type { Config } from '../config/schema.js';
import { InstanceLease } from '../instances/lease.js';
import { coerceError } from '../lib/errors.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../queue/keys.js';
import type { AuthStore } from '../whatsapp/auth-store.js';
import type { SocketFactory } from '../whatsapp/socket.js';
import { WhatsAppSession } from '../whatsapp/session.js';
import type { AttachmentFetcher } from '../outbound/attachment-fetch.js';
import { OutboundConsumer } from '../outbound/outbound-consumer.js';
import { createOutboundQueue } from '../outbound/outbound-queue.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { Queue } from 'bullmq';
import type { OutboundJob } from '../outbound/inbox-events.js';
import { InboundPipeline } from './inbound-pipeline.js';
import { WhatsAppUnavailableError } from '../delivery/relay-errors.js';
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
  /** This process's lease holder id. */
  holder: string;
  log: Logger;
  baileysLogger: ILogger;
  send(message: WorkerToPrimary): void;
}

/**
 * Everything one instance runs in its worker: the WhatsApp session, the
 * binding of each new socket's `messages.upsert` to the inbound queue, and
 * the inbound pipeline that delivers to Chatwoot.
 */
export class InstanceRuntime {
  readonly session: WhatsAppSession;
  readonly pipeline: InboundPipeline;
  readonly outbound: OutboundConsumer;
  private readonly outboundQueue: Queue<OutboundJob>;
  private inbound: SessionInbound | undefined;
  private qr: string | undefined;
  private lastMessageAtMs: number | undefined;
  /** Ids of messages Ponte sent, so their echoes are not relayed back. */
  readonly ownSends = new Set<string>();
  /** The customers' messages since the last agent reply, by chat JID. */
  private readonly unread = new Map<string, WAMessageKey[]>();

  constructor(
    readonly instanceKey: string,
    private readonly deps: InstanceRuntimeDeps,
  ) {
    const log = deps.log.child({ instanceId: instanceKey });
    const lease = new InstanceLease(deps.redis, deps.keys, instanceKey, deps.holder, () => this.session.leaseLost(), { ttlMs: deps.config.whatsapp.leaseTtlMs });
    this.session = new WhatsAppSession({
      instanceKey,
      factory: deps.factory,
      auth: deps.auth,
      lease,
      log: log.child({ module: 'session' }),
      baileysLogger: deps.baileysLogger.child({ instanceId: instanceKey }),
      browser: [deps.config.whatsapp.browserName, 'Chrome', '124.0'],
      reconnectDelayMs: deps.config.whatsapp.reconnectDelayMs,
      maxQrs: deps.config.whatsapp.maxQrSendAttempts,
    });
    this.pipeline = new InboundPipeline({
      config: deps.config,
      redis: deps.redis,
      keys: deps.keys,
      chatwoot: deps.chatwoot,
      log,
      instanceKey,
      ownJids: () => {
        const me = this.session.currentSocket?.user;
        return [me?.id, me?.lid].filter((j): j is string => Boolean(j)).map((j) => jidNormalizedUser(j));
      },
      groupSubject: (jid) => this.session.currentSocket?.groupSubject(jid) ?? Promise.resolve(undefined),
      fetchMedia: async (ref) => {
        const socket = this.session.currentSocket;
        if (!socket || this.session.state !== 'open') throw new WhatsAppUnavailableError();
        return socket.downloadMedia(JSON.parse(ref, BufferJSON.reviver) as WAMessage);
      },
      onDelivered: () => {
        this.lastMessageAtMs = Date.now();
      },
    });
    this.outbound = new OutboundConsumer({
      config: deps.config,
      redis: deps.redis,
      keys: deps.keys,
      instanceKey,
      accountId: parseInstanceKey(instanceKey)!.accountId,
      chatwoot: deps.chatwoot,
      attachments: deps.attachments,
      session: this.session,
      ownSends: this.ownSends,
      unread: this.unread,
      log: log.child({ module: 'outbound' }),
    });
    this.outboundQueue = createOutboundQueue(deps.redis, deps.keys, instanceKey);
    this.session.on('socket', (socket) => {
      socket.ev.on('messages.upsert', ({ messages }) => {
        for (const m of messages) {
          const key = m.key;
          if (key.fromMe || !key.id || !key.remoteJid || key.remoteJid.endsWith('@g.us') || key.remoteJid.endsWith('@broadcast')) continue;
          const list = this.unread.get(jidNormalizedUser(key.remoteJid)) ?? [];
          list.push(key);
          if (list.length > 50) list.shift();
          for (const j of [key.remoteJid, key.remoteJidAlt]) if (j) this.unread.set(jidNormalizedUser(j), list);
        }
      });
      socket.ev.on('groups.update', (updates) => {
        for (const u of updates) {
          if (!u.id || !u.subject) continue;
          void this.pipeline.resolver.renameGroup(u.id, u.subject).catch((err: unknown) => log.warn({ err: coerceError(err), group: u.id }, 'could not rename the group contact'));
        }
      });
      socket.ev.on('call', (calls) => {
        for (const call of calls) void this.onCall(socket, call).catch((err: unknown) => log.warn({ err: coerceError(err), callId: call.id }, 'could not report a call'));
      });
      socket.ev.on('messages.update', (updates) => {
        for (const { key, update } of updates) {
          if (!key.fromMe || !key.id || typeof update.status !== 'number') continue;
          void this.outbound.onReceipt(key.id, update.status).catch((err: unknown) => log.warn({ err: coerceError(err), waId: key.id }, 'could not report a receipt'));
        }
      });
      const previous = this.inbound;
      this.inbound = new SessionInbound(socket.ev, {
        enqueue: (m, t) => this.pipeline.producer.enqueue(m, t),
        log,
        isOwnSend: (waId) => this.ownSends.has(waId),
        ignoreGroups: deps.config.inbound.groupsIgnored.includes('all') || deps.config.inbound.groupsIgnored.includes(instanceKey),
      });
      void previous?.stop();
    });
    this.session.on('qr', (qr, n) => {
      this.qr = qr;
      deps.send({ type: 'event', instanceKey, event: 'qr', data: { qr, n, max: deps.config.whatsapp.maxQrSendAttempts } });
    });
    this.session.on('open', (phone) => {
      this.qr = undefined;
      deps.send({ type: 'event', instanceKey, event: 'open', data: { phone } });
    });
    this.session.on('state', (state, detail) => {
      if (state !== 'awaiting_scan') this.qr = undefined;
      deps.send({ type: 'event', instanceKey, event: 'state', data: { state, ...(detail ? { detail } : {}) } });
    });
    this.session.on('alert', (text) => deps.send({ type: 'event', instanceKey, event: 'alert', data: { text } }));
  }

  /** A missed or rejected call leaves a line in the caller's conversation; calls may be declined automatically (CALLS_REJECT). */
  private async onCall(socket: WaSocket, call: WACallEvent): Promise<void> {
    if (call.isGroup) return;
    let status: 'missed' | 'rejected' | undefined;
    if (call.status === 'offer' && this.deps.config.inbound.rejectCalls) {
      await socket.rejectCall(call.id, call.from);
      status = 'rejected';
    } else if (call.status === 'timeout') status = 'missed';
    if (!status) return;
    const from = jidNormalizedUser(call.from);
    const alt = call.callerPn ? jidNormalizedUser(call.callerPn) : undefined;
    const peer: WaPerson = {};
    for (const jid of [from, alt]) {
      if (!jid) continue;
      if (jid.endsWith('@lid')) peer.lidJid ??= jid;
      else if (jid.endsWith('@s.whatsapp.net')) peer.pnJid ??= jid;
    }
    if (!peer.pnJid && !peer.lidJid) return;
    await this.pipeline.producer.enqueue({
      waId: `CALL${call.id}`,
      chatId: peer.pnJid ?? peer.lidJid ?? from,
      chatKind: 'direct',
      peer,
      fromMe: false,
      timestampS: Math.floor(call.date.getTime() / 1000),
      upsertType: 'notify',
      content: { kind: 'call', status, video: call.isVideo === true },
    });
  }

  async start(): Promise<void> {
    await this.pipeline.start();
    this.outbound.start();
    await this.session.start();
  }

  /** Closes the socket (never unlinking), lets in-flight deliveries finish, stops consuming. */
  async stop(): Promise<void> {
    await this.session.stop();
    await this.inbound?.stop();
    await this.outbound.close().catch(() => undefined);
    await this.outboundQueue.close().catch(() => undefined);
    await this.pipeline.close().catch((err: unknown) => this.deps.log.warn({ err: coerceError(err), instanceId: this.instanceKey }, 'inbound pipeline close failed'));
  }

  async status(): Promise<InstanceStatus> {
    const [stats, pending, outCounts, outStats] = await Promise.all([
      this.pipeline.store.stats(),
      this.pipeline.store.depth(),
      this.outboundQueue.getJobCounts('waiting', 'delayed', 'active'),
      this.deps.redis.hmget(this.deps.keys.stats(this.instanceKey), 'sent', 'failed'),
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
      outbound: { sent: Number(outStats[0] ?? 0), failed: Number(outStats[1] ?? 0), pending: (outCounts.waiting ?? 0) + (outCounts.delayed ?? 0) + (outCounts.active ?? 0) },
      ...(this.lastMessageAtMs ? { lastMessageAtMs: this.lastMessageAtMs } : {}),
    };
  }
}
