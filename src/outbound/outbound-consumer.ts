import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { AnyMessageContent, WAMessage, WAMessageKey } from '@whiskeysockets/baileys';
import { DelayedError, type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ChatwootClientLike, CwMessageStatus } from '../chatwoot/types.js';
import type { Config } from '../config/schema.js';
import { AppError, coerceError } from '../lib/errors.js';
import { brazilianVariants, digitsOf } from '../lib/phone.js';
import type { Logger } from '../observability/logger.js';
import { outboundQueueName, RETENTION_S, type RedisKeys } from '../queue/keys.js';
import type { WhatsAppSession } from '../whatsapp/session.js';
import type { WaSocket } from '../whatsapp/socket.js';
import { AttachmentFetchError, type AttachmentFetcher } from './attachment-fetch.js';
import type { OutboundAttachment, OutboundJob } from './inbox-events.js';
import { markdownToWhatsApp } from './markdown.js';

/** A send that cannot succeed by retrying: the Chatwoot message is marked failed with this reason (words for an agent). */
export class OutboundRejected extends AppError {
  readonly code = 'OUTBOUND_REJECTED';
}

export interface OutboundDeps {
  config: Readonly<Config>;
  redis: Redis;
  keys: RedisKeys;
  instanceKey: string;
  accountId: number;
  chatwoot: ChatwootClientLike;
  /** Downloads agents' attachments from Chatwoot and its storage only (DESIGN.md, Decisions 15). */
  attachments: AttachmentFetcher;
  session: WhatsAppSession;
  /** Ids Ponte sends, so their echoes are not relayed back into Chatwoot. */
  ownSends: Set<string>;
  /** The customer's messages not yet marked read, by chat JID (PN and LID forms). */
  unread: Map<string, WAMessageKey[]>;
  log: Logger;
}

interface Part {
  content: AnyMessageContent;
  /** A temporary file the content streams from; removed once sent. */
  file?: string;
}

const JID = /@(s\.whatsapp\.net|lid|g\.us)$/;
const WA_STATUS: Record<number, CwMessageStatus> = { 3: 'delivered', 4: 'read', 5: 'read' };

/** A WhatsApp-like id Ponte chooses before sending, so the echo is known to be its own. */
function newMessageId(): string {
  return `3EB0${randomBytes(9).toString('hex').toUpperCase()}`;
}

/**
 * Sends one instance's agent messages on WhatsApp, one job at a time (so
 * each chat stays in order), and reports ticks back to Chatwoot.
 *
 * Exactly once: a message becomes parts (the text, then each attachment;
 * the first attachment carries the text as its caption when it can), and
 * each part sent is recorded before the next, so a repeated webhook or a
 * retried job sends only what is missing. While the instance is
 * disconnected, jobs wait up to OUTBOUND_MAX_WAIT_MS; a logged-out or halted
 * instance fails them at once with a reason.
 */
export class OutboundConsumer {
  private worker: Worker<OutboundJob> | undefined;

  constructor(private readonly d: OutboundDeps) {}

  start(): void {
    const q = this.d.config.queue;
    this.worker = new Worker<OutboundJob>(outboundQueueName(this.d.instanceKey), (job, token) => this.process(job, token), {
      connection: this.d.redis,
      prefix: this.d.keys.bullPrefix,
      concurrency: this.d.config.queue.concurrency,
      lockDuration: q.lockDurationMs,
      stalledInterval: q.stalledIntervalMs,
    });
    this.worker.on('error', (err) => this.d.log.warn({ err }, 'outbound worker error'));
    this.worker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) void this.fail(job.data, `could not send: ${err.message}`);
    });
  }

  async close(): Promise<void> {
    await this.worker?.close();
  }

  private async process(job: Job<OutboundJob>, token: string | undefined): Promise<void> {
    const j = job.data;
    // Chats run in parallel, each in order: a message waits for the one before
    // it in its conversation (a predecessor lost for over a minute is not waited for).
    if (j.seq !== undefined) {
      const done = Number((await this.d.redis.get(this.d.keys.outDone(this.d.instanceKey, j.conversationId))) ?? 0);
      if (done < j.seq - 1 && Date.now() - j.receivedAtMs < 60_000) {
        await job.moveToDelayed(Date.now() + 100, token);
        throw new DelayedError();
      }
    }
    try {
      await this.run(job, token);
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      if (job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw err;
      await this.markDone(j);
      throw err;
    }
    await this.markDone(j);
  }

  private async markDone(j: OutboundJob): Promise<void> {
    if (j.seq === undefined) return;
    // max(done, seq): a later message can finish first only after the escape above.
    await this.d.redis.eval(
      "local v = tonumber(redis.call('GET', KEYS[1]) or '0') if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end return 1",
      1,
      this.d.keys.outDone(this.d.instanceKey, j.conversationId),
      String(j.seq),
      String(RETENTION_S),
    );
  }

  private async run(job: Job<OutboundJob>, token: string | undefined): Promise<void> {
    const j = job.data;
    const socket = this.d.session.currentSocket;
    const state = this.d.session.state;
    if (state === 'logged_out' || state === 'halted' || state === 'qr_expired' || state === 'stopped') {
      return this.fail(j, `WhatsApp number is not connected (${state.replace('_', ' ')}); link it again and press Retry`);
    }
    if (state !== 'open' || !socket) {
      if (Date.now() - j.receivedAtMs > this.d.config.outbound.maxWaitMs) return this.fail(j, 'WhatsApp was disconnected for too long');
      await job.moveToDelayed(Date.now() + 2000, token);
      throw new DelayedError();
    }
    try {
      if (j.kind === 'delete') await this.remove(socket, j);
      else await this.send(socket, j);
    } catch (err) {
      if (err instanceof OutboundRejected) return this.fail(j, err.message);
      throw err;
    }
  }

  private async fail(j: OutboundJob, reason: string): Promise<void> {
    this.d.log.warn({ messageId: j.messageId, conversationId: j.conversationId, reason }, 'agent message failed');
    await this.d.redis.hincrby(this.d.keys.stats(this.d.instanceKey), 'failed', 1);
    if (j.kind === 'send') {
      await this.d.chatwoot.updateMessageStatus(j.accountId, j.conversationId, j.messageId, 'failed', reason).catch((err: unknown) => {
        this.d.log.warn({ err: coerceError(err), messageId: j.messageId }, 'could not mark the message failed in Chatwoot');
      });
    }
  }

  /** The chat's JID: the contact inbox's source id when Ponte created it, else the contact's number checked on WhatsApp. */
  private async jidFor(socket: WaSocket, j: OutboundJob): Promise<string> {
    if (j.contact.sourceId && JID.test(j.contact.sourceId)) return j.contact.sourceId;
    if (j.contact.identifier && JID.test(j.contact.identifier)) return j.contact.identifier;
    const cached = await this.d.redis.get(this.d.keys.outJid(this.d.instanceKey, j.conversationId));
    if (cached) return cached;
    const digits = j.contact.phone ? digitsOf(j.contact.phone) : '';
    if (!digits) throw new OutboundRejected('the contact has no phone number to send WhatsApp messages to');
    const found = (await socket.onWhatsApp(...brazilianVariants(digits))).find((r) => r.exists);
    if (!found) throw new OutboundRejected(`+${digits} is not on WhatsApp`);
    await this.d.redis.set(this.d.keys.outJid(this.d.instanceKey, j.conversationId), found.jid, 'EX', RETENTION_S);
    return found.jid;
  }

  private async send(socket: WaSocket, j: OutboundJob): Promise<void> {
    const jid = await this.jidFor(socket, j);
    const partsKey = this.d.keys.outParts(this.d.instanceKey, j.messageId);
    const done = await this.d.redis.hgetall(partsKey);
    const quoted = await this.quoted(jid, j.inReplyTo);
    let text = j.content ? markdownToWhatsApp(j.content) : '';
    if (text && this.d.config.outbound.agentSignature && j.senderName) text = `*${j.senderName}:*\n${text}`;

    const plan: Array<{ text?: string; attachment?: OutboundAttachment }> = [];
    const first = j.attachments[0];
    const captionable = first && first.fileType !== 'audio';
    if (text && !captionable) plan.push({ text });
    j.attachments.forEach((a, i) => plan.push({ attachment: a, ...(i === 0 && captionable && text ? { text } : {}) }));
    if (plan.length === 0) return this.fail(j, 'the message has no text and no attachment');

    for (const [i, step] of plan.entries()) {
      if (done[String(i)]) continue;
      const part: Part = step.attachment ? await this.mediaPart(step.attachment, step.text) : { content: { text: step.text! } };
      const id = newMessageId();
      this.d.ownSends.add(id);
      let sent: WAMessage | undefined;
      try {
        sent = await socket.sendMessage(jid, part.content, { messageId: id, ...(i === 0 && quoted ? { quoted } : {}) });
      } finally {
        if (part.file) await rm(part.file, { force: true });
      }
      const waId = sent?.key.id ?? id;
      await this.d.redis
        .multi()
        .hset(partsKey, String(i), waId)
        .expire(partsKey, RETENTION_S)
        .set(this.d.keys.outWa(this.d.instanceKey, waId), `${j.conversationId}:${j.messageId}:${i}:${jid}`, 'EX', RETENTION_S)
        .set(this.d.keys.cwToWa(this.d.instanceKey, j.messageId), waId, 'EX', RETENTION_S, 'NX')
        .hincrby(this.d.keys.stats(this.d.instanceKey), 'sent', 1)
        .exec();
    }
    await this.d.chatwoot.updateMessageStatus(j.accountId, j.conversationId, j.messageId, 'sent');
    if (this.d.config.outbound.markRead) await this.markRead(socket, jid);
  }

  /** An agent answered: the customer's messages in this chat get their blue ticks. */
  private async markRead(socket: WaSocket, jid: string): Promise<void> {
    const keys = this.d.unread.get(jid);
    if (!keys?.length) return;
    for (const k of keys) for (const j of [k.remoteJid, k.remoteJidAlt]) if (j) this.d.unread.delete(j);
    await socket.readMessages(keys).catch((err: unknown) => this.d.log.warn({ err: coerceError(err), jid }, 'could not mark messages read'));
  }

  private async quoted(jid: string, inReplyTo: number | undefined): Promise<WAMessage | undefined> {
    if (!inReplyTo) return undefined;
    const waId = await this.d.redis.get(this.d.keys.cwToWa(this.d.instanceKey, inReplyTo));
    if (!waId) return undefined;
    const fromMe = (await this.d.redis.exists(this.d.keys.outWa(this.d.instanceKey, waId))) === 1;
    return { key: { remoteJid: jid, id: waId, fromMe }, message: { conversation: '' } };
  }

  private async mediaPart(a: OutboundAttachment, caption: string | undefined): Promise<Part> {
    const max = this.d.config.outbound.mediaMaxBytes;
    if (a.size !== undefined && a.size > max) throw new OutboundRejected(`the attachment is larger than ${Math.round(max / 1048576)} MiB`);
    let fetched: Awaited<ReturnType<AttachmentFetcher['fetchToFile']>>;
    try {
      fetched = await this.d.attachments.fetchToFile(a.url);
    } catch (err) {
      const e = coerceError(err);
      if (!(e instanceof AttachmentFetchError)) throw e;
      // The agent sees plain words; the host, status and remote text stay in the log.
      this.d.log.warn({ err: e, reason: e.reason }, 'attachment download failed');
      if (!e.retryable) throw new OutboundRejected(e.agentMessage, { cause: e });
      throw e;
    }
    const mimetype = (a.contentType ?? fetched.contentType ?? 'application/octet-stream').split(';')[0]!.trim();
    const cap = caption ? { caption } : {};
    // Baileys streams a local file (`url` as a path) while encrypting: the file never sits whole in memory.
    const media = { url: fetched.file };
    const part = (content: AnyMessageContent): Part => ({ content, file: fetched.file });
    if (a.fileType === 'image' && /^image\/(jpeg|png|webp|gif)$/.test(mimetype)) return part({ image: media, mimetype, ...cap });
    if (a.fileType === 'video') return part({ video: media, mimetype, ...cap });
    if (a.fileType === 'audio' || mimetype.startsWith('audio/')) {
      // audio/ogg (opus) goes as a voice note; other audio as a file to play (DESIGN.md, Decisions 11).
      const ptt = mimetype === 'audio/ogg' || mimetype === 'audio/opus';
      return part({ audio: media, mimetype: ptt ? 'audio/ogg; codecs=opus' : mimetype, ptt });
    }
    return part({ document: media, mimetype, fileName: a.fileName, ...cap });
  }

  private async remove(socket: WaSocket, j: OutboundJob): Promise<void> {
    const parts = await this.d.redis.hgetall(this.d.keys.outParts(this.d.instanceKey, j.messageId));
    for (const waId of Object.values(parts)) {
      const record = await this.d.redis.get(this.d.keys.outWa(this.d.instanceKey, waId));
      const jid = record?.split(':').slice(3).join(':');
      if (!jid) continue;
      await socket.sendMessage(jid, { delete: { remoteJid: jid, id: waId, fromMe: true } });
    }
  }

  /** WhatsApp receipts for sent parts: the Chatwoot message shows the lowest status of its parts. */
  async onReceipt(waId: string, waStatus: number): Promise<void> {
    const status = WA_STATUS[waStatus];
    if (!status) return;
    const record = await this.d.redis.get(this.d.keys.outWa(this.d.instanceKey, waId));
    if (!record) return;
    const [conversationId, messageId, part] = record.split(':');
    const stKey = this.d.keys.outStatus(this.d.instanceKey, Number(messageId));
    const before = await this.d.redis.hget(stKey, part!);
    if (Number(before ?? 0) >= waStatus) return;
    await this.d.redis.multi().hset(stKey, part!, String(waStatus)).expire(stKey, RETENTION_S).exec();
    const [parts, statuses] = await Promise.all([this.d.redis.hlen(this.d.keys.outParts(this.d.instanceKey, Number(messageId))), this.d.redis.hvals(stKey)]);
    if (statuses.length < parts) return;
    const lowest = Math.min(...statuses.map(Number));
    const target = WA_STATUS[lowest];
    if (!target) return;
    await this.d.chatwoot.updateMessageStatus(this.d.accountId, Number(conversationId), Number(messageId), target);
  }
}
