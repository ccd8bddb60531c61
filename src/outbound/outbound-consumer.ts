/** Sends one instance's agent messages on WhatsApp, each conversation in order, and reports their ticks to Chatwoot. */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { type AnyMessageContent, proto, type WAMessage, type WAMessageKey } from '@whiskeysockets/baileys';
import { DelayedError, type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ChatwootClientLike, CwMessageStatus } from '../chatwoot/types.js';
import { ChatwootError } from '../chatwoot/errors.js';
import type { Config } from '../config/schema.js';
import { OutageBreaker } from '../lib/outage-breaker.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { AppError, coerceError } from '../lib/errors.js';
import { brazilianVariants, digitsOf } from '../lib/phone.js';
import type { Logger } from '../observability/logger.js';
import { legacyOutboundQueueName, RETENTION_S, type RedisKeys } from '../redis/keys.js';
import type { InstanceJobs } from '../redis/instance-jobs.js';
import type { WhatsAppSession } from '../whatsapp/session.js';
import type { WaSocket } from '../whatsapp/socket.js';
import { AttachmentFetchError, type AttachmentFetcher } from './attachment-fetch.js';
import type { OutboundAttachment, OutboundJob } from './inbox-events.js';
import type { BotOption, BotOptionsStyle } from '../model/bot-question.js';
import type { SendRestriction } from '../model/instance.js';
import { BotQuestions } from '../redis/bot-questions.js';
import { type BotRendering, renderBot } from './bot-render.js';
import { markdownToWhatsApp } from './markdown.js';
import { type ConversationJobData, outboundEvent, scheduleConversations } from './outbound-queue.js';
import { OutboundRecords, type SentPart, WA_RECEIPT_STATUS } from './outbound-records.js';
import { type OutboundEvent, type OutboundHead, OutboundStore } from './outbound-store.js';
import { type NewChatCapInfo, REACHOUT_REFUSAL, restrictionReason, SafeSending, utcTime } from './safe-sending.js';
import { StatusReporter } from './status-reporter.js';
import { UnreadMessages } from './unread.js';

/** A send that cannot succeed by retrying: the Chatwoot message is marked failed with this reason (words for an agent). */
export class OutboundRejected extends AppError {
  readonly code = 'OUTBOUND_REJECTED';
}

/** The limiter holds the message (or "typing…" shows): its conversation waits, the others go on. */
class OutboundHeld extends AppError {
  readonly code = 'OUTBOUND_HELD';

  constructor(readonly waitMs: number) {
    super(`held for ${waitMs} ms`);
  }
}

/** The number is not connected right now: the conversation waits (no attempt is spent). */
class WhatsAppNotConnected extends AppError {
  readonly code = 'WHATSAPP_NOT_CONNECTED';
}

export interface OutboundDeps {
  config: Readonly<Config>;
  /** The worker process's outbound jobs, shared by its instances. */
  jobs: InstanceJobs<ConversationJobData>;
  redis: Redis;
  keys: RedisKeys;
  instanceKey: string;
  accountId: number;
  chatwoot: ChatwootClientLike;
  /** Downloads agents' attachments from Chatwoot and its storage only (DESIGN.md, Decisions 15). */
  attachments: AttachmentFetcher;
  session: WhatsAppSession;
  /** Records each id Ponte sends, so its echo is not relayed back into Chatwoot. */
  ownSend(waId: string): void;
  /** The instance's own `BOT_OPTIONS_STYLE`, read at each bot question; undefined: the global one. */
  botOptionsStyle?: () => Promise<BotOptionsStyle | undefined>;
  /** Tells the notify conversation (WhatsApp's reach-out lock). */
  alert?(text: string): void;
  log: Logger;
}

/** One WhatsApp message of an agent message: a text, an attachment (with the text as caption), a bot's card or poll. */
interface PlanStep {
  text?: string;
  attachment?: OutboundAttachment;
  /** A bot card's image: when it cannot be fetched (a host not allowed, not an image), the caption goes as text. */
  card?: boolean;
  poll?: { name: string; values: string[] };
}

interface Part {
  content: AnyMessageContent;
  /** A temporary file the content streams from; removed once sent. */
  file?: string;
}

const JID = /@(s\.whatsapp\.net|lid|g\.us)$/;
/** Baileys' statuses for a closed socket (428 connection closed, 408 lost, 440 replaced): the number is not there, the message is fine. */
const DISCONNECTED_CODES = new Set([408, 428, 440, 500, 503, 515]);
const NOT_RUNNING: ReadonlySet<WhatsAppSession['state']> = new Set(['logged_out', 'halted', 'qr_expired', 'passkey_required', 'stopped']);

/** A WhatsApp-like id Ponte chooses before sending, so the echo is known to be its own. */
function newMessageId(): string {
  return `3EB0${randomBytes(9).toString('hex').toUpperCase()}`;
}

/**
 * Sends one instance's agent messages on WhatsApp and reports their ticks.
 *
 * Order: each conversation's events (sends, deletes, updates) wait in a
 * Redis list (`OutboundStore`); one BullMQ job per conversation drains it
 * head first, so a conversation is strictly in order while conversations
 * proceed in parallel, as inbound does.
 *
 * Exactly once: a message becomes parts (the text, then each attachment;
 * the first attachment carries the text as its caption when it can); each
 * part's WhatsApp id is chosen and kept before it is sent, and the part is
 * recorded as accepted before the next, so a repeated webhook, a retried
 * job or a restart sends only what is missing, and a repeat after a crash
 * reuses the id (the recipient's phone drops it).
 *
 * Failures (DESIGN.md, Decisions 3): Chatwoot unreachable while fetching an
 * attachment pauses the instance's outbound queue (the outage breaker) and
 * spends no attempt; a disconnected number makes the conversation wait up
 * to OUTBOUND_MAX_WAIT_MS; a failure of the message itself is retried up to
 * BULLMQ_JOB_ATTEMPTS, then the message is marked failed with a reason. Once
 * WhatsApp accepted a message it is never marked failed: its ticks go
 * through the {@link StatusReporter}, which retries on its own.
 *
 * Updates: Chatwoot announces every status Ponte reports with a
 * `message_updated`; only one for a message WhatsApp never accepted (one
 * Ponte marked failed, or one it never saw: it failed while Ponte was down)
 * is a Retry, and sends it once, however many updates arrive.
 */
export class OutboundConsumer {
  readonly store: OutboundStore;
  readonly records: OutboundRecords;
  readonly unread: UnreadMessages;
  readonly reporter: StatusReporter;
  readonly questions: BotQuestions;
  readonly safety: SafeSending;
  private readonly breaker: OutageBreaker;
  private unregister: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly draining = new Set<Promise<void>>();
  /** WhatsApp ids of the parts being sent now, until they are recorded. */
  private readonly sending = new Set<string>();
  /**
   * What WhatsApp said of parts still being sent (an error ack's code, the
   * highest receipt): on a fast link its answer comes before the send returns.
   */
  private readonly early = new Map<string, { code?: string; status?: number }>();

  constructor(private readonly deps: OutboundDeps) {
    const q = deps.config.queue;
    this.store = new OutboundStore(deps.redis, deps.keys, deps.instanceKey);
    this.records = new OutboundRecords(deps.redis, deps.keys, deps.instanceKey);
    this.unread = new UnreadMessages(deps.redis, deps.keys, deps.instanceKey);
    this.questions = new BotQuestions(deps.redis, deps.keys, deps.instanceKey);
    this.safety = new SafeSending(deps);
    this.reporter = new StatusReporter({ records: this.records, chatwoot: deps.chatwoot, accountId: deps.accountId, log: deps.log, retryDelayMs: { min: q.outageProbeMinDelayMs, max: q.outageProbeMaxDelayMs } });
    this.breaker = new OutageBreaker({ minDelayMs: q.outageProbeMinDelayMs, maxDelayMs: q.outageProbeMaxDelayMs, rateLimitDelayMs: q.rateLimitDelayMs });
  }

  private get queue(): Queue<ConversationJobData> {
    return this.deps.jobs.queue;
  }

  async start(): Promise<void> {
    const q = this.deps.config.queue;
    this.unregister = this.deps.jobs.register(this.deps.instanceKey, (job, token) => this.track(this.drain(job, token)));
    await this.adoptLegacyQueue();
    await this.sweep();
    await this.reporter.resume();
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.deps.log.warn({ err: coerceError(err) }, 'outbound sweep failed'));
    }, q.stalledIntervalMs);
    this.sweepTimer.unref();
  }

  /** Re-adds the drain job of every conversation that holds events (jobs that exist are left alone). */
  async sweep(): Promise<void> {
    await scheduleConversations(this.queue, this.deps.instanceKey, await this.store.scheduled());
  }

  /**
   * The instance's own outbound queue of earlier versions: jobs that carried
   * the message itself go into their conversation's list, and the queue is
   * removed. Only when it exists (one EXISTS per start otherwise).
   */
  private async adoptLegacyQueue(): Promise<void> {
    const { redis, keys, instanceKey } = this.deps;
    const name = legacyOutboundQueueName(instanceKey);
    if ((await redis.exists(`${keys.bullPrefix}:${name}:meta`, `${keys.bullPrefix}:${name}:id`)) === 0) return;
    const legacy = new Queue(name, { connection: redis, prefix: keys.bullPrefix });
    try {
      for (const job of await legacy.getJobs(['waiting', 'delayed', 'prioritized', 'active', 'failed'])) {
        if (job.name !== 'send' && job.name !== 'delete') continue;
        await this.store.enqueue(outboundEvent(job.data as OutboundJob));
      }
      await legacy.obliterate({ force: true });
      this.deps.log.info({ queue: name }, "an earlier version's outbound queue was taken over");
    } finally {
      await legacy.close();
    }
  }

  /** Lets the conversation in progress finish its current event (its job then goes back to waiting), then stops; unreported ticks stay recorded. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      this.unregister?.();
      await Promise.allSettled([...this.draining]);
      await this.reporter.close();
    })();
    return this.closing;
  }

  private track(p: Promise<void>): Promise<void> {
    this.draining.add(p);
    return p.finally(() => this.draining.delete(p));
  }

  /** Events waiting, over every conversation. */
  pending(): Promise<number> {
    return this.store.depth();
  }

  private async drain(job: Job<ConversationJobData>, token: string | undefined): Promise<void> {
    const { conversationId } = job.data;
    const generation = job.data.generation ?? '1';
    for (;;) {
      if (this.closing) throw Worker.RateLimitError();
      const head = await this.store.next(conversationId, generation);
      if (!head) return;
      await this.handleHead(job, token, conversationId, head);
    }
  }

  private async handleHead(job: Job<ConversationJobData>, token: string | undefined, conversationId: number, head: OutboundHead): Promise<void> {
    const j = head.event.job;
    const context = { messageId: j.messageId, conversationId, kind: j.kind };
    try {
      await this.process(head.event);
      this.breaker.success();
      await this.store.ack(conversationId, head);
      return;
    } catch (thrown) {
      const err = coerceError(thrown);
      if (err instanceof OutboundRejected) {
        await this.fail(j, err.message);
        await this.store.ack(conversationId, head);
        return;
      }
      if (err instanceof OutboundHeld) {
        await job.moveToDelayed(Date.now() + err.waitMs, token);
        throw new DelayedError();
      }
      if (err instanceof WhatsAppNotConnected) {
        if (Date.now() - j.receivedAtMs > this.deps.config.outbound.maxWaitMs) {
          await this.fail(j, 'WhatsApp was disconnected for too long; press Retry once the number is back');
          await this.store.ack(conversationId, head);
          return;
        }
        await job.moveToDelayed(Date.now() + 2000, token);
        throw new DelayedError();
      }
      if (isChatwootOutage(err)) {
        const delayMs = this.breaker.trip(err instanceof ChatwootError && err.kind === 'rate_limited' ? 'rate_limited' : 'outage');
        this.deps.log.warn({ ...context, err, delayMs }, 'chatwoot unavailable: outbound paused');
        await this.queue.rateLimit(delayMs);
        throw Worker.RateLimitError();
      }
      const attempts = await this.store.recordAttempt(head.event);
      if (attempts >= this.deps.config.queue.attempts) {
        this.deps.log.error({ ...context, err, attempts }, 'agent message failed on every attempt');
        await this.fail(j, 'could not be sent on WhatsApp; press Retry to try again');
        await this.store.ack(conversationId, head);
        return;
      }
      const delayMs = backoffDelayMs(attempts, this.deps.config.queue.backoffDelayMs, Number.MAX_SAFE_INTEGER, 0);
      this.deps.log.warn({ ...context, err, attempts, delayMs }, 'agent message failed: retrying');
      await job.moveToDelayed(Date.now() + delayMs, token);
      throw new DelayedError();
    }
  }

  /** The socket to send on, or why not: a number that is gone fails the message, one reconnecting makes it wait. */
  private socket(): WaSocket {
    const state = this.deps.session.state;
    if (NOT_RUNNING.has(state)) throw new OutboundRejected(`the WhatsApp number is not connected (${state.replace('_', ' ')}); link it again and press Retry`);
    const socket = this.deps.session.currentSocket;
    if (state !== 'open' || !socket) throw new WhatsAppNotConnected(`instance is ${state}`);
    return socket;
  }

  private async process(event: OutboundEvent): Promise<void> {
    const j = event.job;
    if (j.kind === 'delete') return this.remove(this.socket(), j);
    if (j.kind === 'update') {
      const state = await this.records.state(j.messageId);
      // An announcement of a status Ponte reported (its send came first in this conversation's order).
      if (state.accepted || (!state.failed && state.want !== undefined)) return;
      this.deps.log.info({ messageId: j.messageId, conversationId: j.conversationId, failedByPonte: state.failed }, 'agent pressed Retry: sending the message');
    }
    return this.send(this.socket(), j);
  }

  private async fail(j: OutboundJob, reason: string): Promise<void> {
    this.deps.log.warn({ messageId: j.messageId, conversationId: j.conversationId, reason }, 'agent message failed');
    await this.deps.redis.hincrby(this.deps.keys.stats(this.deps.instanceKey), 'failed', 1);
    if (j.kind === 'delete') return;
    if (await this.records.raise(j.messageId, j.conversationId, 'failed', reason)) this.reporter.request(j.messageId);
  }

  /** The chat's JID: the contact inbox's source id when Ponte created it, else the contact's number checked on WhatsApp. */
  private async jidFor(socket: WaSocket, j: OutboundJob): Promise<string> {
    if (j.contact.sourceId && JID.test(j.contact.sourceId)) return j.contact.sourceId;
    if (j.contact.identifier && JID.test(j.contact.identifier)) return j.contact.identifier;
    const cached = await this.deps.redis.get(this.deps.keys.outJid(this.deps.instanceKey, j.conversationId));
    if (cached) return cached;
    const digits = j.contact.phone ? digitsOf(j.contact.phone) : '';
    if (!digits) throw new OutboundRejected('the contact has no phone number to send WhatsApp messages to');
    const found = (await socket.onWhatsApp(...brazilianVariants(digits))).find((r) => r.exists);
    if (!found) throw new OutboundRejected(`+${digits} is not on WhatsApp`);
    await this.deps.redis.set(this.deps.keys.outJid(this.deps.instanceKey, j.conversationId), found.jid, 'EX', RETENTION_S);
    return found.jid;
  }

  private async send(socket: WaSocket, j: OutboundJob): Promise<void> {
    const jid = await this.jidFor(socket, j);
    const done = await this.records.sentParts(j.messageId);
    if (Object.keys(done).length === 0) await this.beforeFirstPart(socket, j, jid);
    let text = j.content ? markdownToWhatsApp(j.content) : '';
    if (text && this.deps.config.outbound.agentSignature && j.senderName) text = `*${j.senderName}:*\n${text}`;

    const plan: PlanStep[] = [];
    const bot = j.bot ? renderBot(j.content, j.bot, (await this.deps.botOptionsStyle?.()) ?? this.deps.config.bots.optionsStyle) : undefined;
    if (bot) {
      // A bot signs nothing: its messages carry no agent's name.
      plan.push(...botPlan(bot));
      for (const a of j.attachments) plan.push({ attachment: a });
    } else {
      const first = j.attachments[0];
      const captionable = first && first.fileType !== 'audio';
      if (text && !captionable) plan.push({ text });
      j.attachments.forEach((a, i) => plan.push({ attachment: a, ...(i === 0 && captionable && text ? { text } : {}) }));
    }
    if (plan.length === 0) throw new OutboundRejected('the message has no text and no attachment');

    const quoted = await this.quoted(jid, j.inReplyTo);
    for (const [i, step] of plan.entries()) {
      if (done[String(i)]) continue;
      let part: Part;
      // A poll's secret is chosen once, like its id: a repeat sends the poll its votes are encrypted for.
      const secret = step.poll ? Buffer.from(await this.records.partSecret(j.messageId, i, randomBytes(32).toString('base64')), 'base64') : undefined;
      try {
        if (step.poll) part = { content: { poll: { name: step.poll.name, values: step.poll.values, selectableCount: 1, messageSecret: secret } } };
        else if (step.card) part = await this.cardPart(step.attachment!, step.text!);
        else part = step.attachment ? await this.mediaPart(step.attachment, step.text) : { content: { text: step.text! } };
      } catch (err) {
        // Part of the message is on WhatsApp already: it stays sent (never failed), the rest is logged.
        if (err instanceof OutboundRejected && Object.keys(done).length > 0) {
          this.deps.log.warn({ messageId: j.messageId, part: i, reason: err.message }, 'a part of an agent message could not be sent');
          continue;
        }
        throw err;
      }
      const id = await this.records.partId(j.messageId, i, newMessageId());
      this.deps.ownSend(id);
      // Remembered before the options reach the customer: an answer may come back at once.
      if (bot?.question && i === bot.question.step) await this.rememberQuestion(j, bot.question.options, step.poll ? { waId: id, values: step.poll.values, secret: secret! } : undefined);
      let sent: WAMessage | undefined;
      let early: { code?: string; status?: number } | undefined;
      this.sending.add(id);
      try {
        try {
          sent = await socket.sendMessage(jid, part.content, { messageId: id, ...(i === 0 && quoted ? { quoted } : {}) });
        } catch (err) {
          throw isDisconnect(err) ? new WhatsAppNotConnected('the socket closed during the send', { cause: err }) : err;
        } finally {
          if (part.file) await rm(part.file, { force: true });
        }
        const waId = sent?.key.id ?? id;
        if (step.poll) await this.keepPollSecret(waId, step.poll.values, sent?.message?.messageContextInfo?.messageSecret ?? secret!);
        await this.records.recordSent({ messageId: j.messageId, conversationId: j.conversationId, part: i, jid }, waId, sent?.message ? proto.Message.encode(sent.message).finish() : undefined);
        done[String(i)] = waId;
      } finally {
        this.sending.delete(id);
        early = this.early.get(id);
        this.early.delete(id);
      }
      // WhatsApp answered before the part was recorded: its refusal or receipt applies now.
      const waId = done[String(i)];
      if (early?.code !== undefined && waId) await this.onErrorAck(waId, early.code);
      else if (early?.status !== undefined && waId) await this.onReceipt(waId, early.status);
    }
    if (await this.records.raise(j.messageId, j.conversationId, 'sent')) this.reporter.request(j.messageId);
    if (this.deps.config.outbound.markRead) await this.markRead(socket, j.conversationId);
  }

  /** The limiter, opt-outs and the reach-out lock decide (a reply goes at once); then "typing…" shows for a moment when configured. */
  private async beforeFirstPart(socket: WaSocket, j: OutboundJob, jid: string): Promise<void> {
    const decision = await this.safety.decide(j, jid);
    if (decision.action === 'refuse') throw new OutboundRejected(decision.reason);
    if (decision.action === 'hold') throw new OutboundHeld(decision.waitMs);
    const typing = await this.safety.typing(j);
    if (typing.compose) await socket.sendPresenceUpdate('composing', jid).catch((err: unknown) => this.deps.log.debug({ err: coerceError(err) }, 'could not show typing'));
    if (typing.waitMs > 0) throw new OutboundHeld(typing.waitMs);
  }

  /** Messages held by the limiter, over every conversation, and WhatsApp's restriction stopping proactive sends now, if any. */
  safetyStatus(): ReturnType<SafeSending['store']['status']> {
    return this.safety.store.status();
  }

  /**
   * WhatsApp took a sent part, then refused it (an error ack): the message is
   * marked failed with words an agent understands. A refusal for the reach-out
   * lock (463) also stops proactive sends until the lock ends, and the notify
   * conversation hears of it once; any other code (479: the stanza did not
   * validate) concerns that message alone.
   */
  async onErrorAck(waId: string, code: string): Promise<void> {
    const part = await this.sentPart(waId, { code });
    if (!part) return;
    let reason: string;
    if (code === REACHOUT_REFUSAL) {
      reason = restrictionReason('reachout', await this.restrict('reachout', undefined));
      this.deps.log.warn({ messageId: part.messageId, code }, 'WhatsApp refused a message for its reach-out lock');
    } else {
      reason = `WhatsApp refused this message (error ${code}); it was not delivered. Send it again`;
      this.deps.log.warn({ messageId: part.messageId, code }, 'WhatsApp refused a message');
    }
    if (await this.records.refuse(part.messageId, part.conversationId, reason)) {
      await this.deps.redis.hincrby(this.deps.keys.stats(this.deps.instanceKey), 'failed', 1);
      this.reporter.request(part.messageId);
    }
  }

  /** WhatsApp's reach-out lock (`connection.update` `reachoutTimeLock`): proactive sends stop until `untilMs` (unknown: REACHOUT_LOCK_DEFAULT_MS); `lifted`: it is over. */
  async reachoutLock(untilMs: number | undefined, lifted = false): Promise<void> {
    if (lifted) await this.safety.store.unlock('reachout');
    else await this.restrict('reachout', untilMs);
  }

  /**
   * WhatsApp's count of the number's new chats in the current cycle
   * (`message-capping.update`): capped, proactive sends stop until the cycle
   * ends and operators are told once; a warning that the cap is near is
   * passed on once per cycle; otherwise a cap that was on is lifted.
   */
  async newChatCap(info: NewChatCapInfo): Promise<void> {
    const endS = Number(info.cycle_end_timestamp);
    const untilMs = Number.isFinite(endS) && endS > 0 ? endS * 1000 : undefined;
    const used = info.used_quota !== undefined && info.total_quota !== undefined ? ` (${info.used_quota} of ${info.total_quota} used)` : '';
    const status = info.capping_status;
    if (status === 'CAPPED') {
      await this.restrict('cap', untilMs, used);
      return;
    }
    await this.safety.store.unlock('cap');
    if (status !== 'FIRST_WARNING' && status !== 'SECOND_WARNING') return;
    const ends = untilMs ?? Date.now() + 24 * 3600_000;
    if (!(await this.safety.store.firstTime(`cap:${status}:${ends}`, ends - Date.now()))) return;
    this.deps.log.warn({ status, used: info.used_quota, quota: info.total_quota }, 'WhatsApp warns that the number nears its limit of new chats');
    this.deps.alert?.(`WhatsApp warns that this number is close to its limit of new chats${used}; the count starts again ${utcTime(ends)} UTC. Once it is reached, Ponte stops messages to customers who have not written in 24 h until then; replies to customers still go.`);
  }

  /**
   * Proactive sends stop for `kind` until `untilMs`; the notify conversation is
   * told when the restriction is new. Resolves with when proactive sends may go again.
   */
  private async restrict(kind: SendRestriction, untilMs: number | undefined, detail = ''): Promise<number> {
    const isNew = await this.safety.lock(kind, untilMs);
    const endsMs = (await this.safety.store.restriction())?.untilMs ?? untilMs ?? Date.now() + this.deps.config.safety.lockDefaultMs;
    if (!isNew) return endsMs;
    const until = utcTime(endsMs);
    const what = kind === 'cap' ? `WhatsApp's limit of new chats for this number is reached${detail}, until ${until} UTC.` : `WhatsApp is restricting this number from starting new chats until ${until} UTC.`;
    this.deps.alert?.(`${what} Ponte stops messages to customers who have not written in 24 h until then (they fail with that reason); replies to customers still go.`);
    return endsMs;
  }

  /** The bot's question, so the customer's answer (a number, a title, a vote on its poll) comes back as the option it chose. */
  private async rememberQuestion(j: OutboundJob, options: BotOption[], poll: { waId: string; values: string[]; secret: Uint8Array } | undefined): Promise<void> {
    await this.questions.remember(j.conversationId, { messageId: j.messageId, options, ...(poll ? { pollWaId: poll.waId } : {}) });
    if (poll) await this.keepPollSecret(poll.waId, poll.values, poll.secret);
  }

  /** What reading a vote on Ponte's own poll takes: its options, its secret and its creator, this number (under each of its JIDs). */
  private async keepPollSecret(waId: string, values: string[], secret: Uint8Array): Promise<void> {
    await this.questions.rememberPoll(waId, { options: values, secret: Buffer.from(secret).toString('base64'), creatorJids: this.deps.session.ownJids() });
  }

  /** A bot card: its image with the caption, or the caption alone when the image cannot be had (a host not allowed, a file that is no image). */
  private async cardPart(a: OutboundAttachment, caption: string): Promise<Part> {
    try {
      const part = await this.mediaPart(a, caption);
      if ('image' in part.content) return part;
      if (part.file) await rm(part.file, { force: true });
      this.deps.log.info({ reason: 'not an image' }, 'bot card sent without its image');
    } catch (err) {
      if (!(err instanceof OutboundRejected)) throw err;
      this.deps.log.info({ reason: err.message }, 'bot card sent without its image');
    }
    return { content: { text: caption } };
  }

  /** An agent answered: the customer's messages in this conversation get their blue ticks. */
  private async markRead(socket: WaSocket, conversationId: number): Promise<void> {
    const keys = await this.unread.take(conversationId);
    if (keys.length === 0) return;
    await socket.readMessages(keys).catch((err: unknown) => this.deps.log.warn({ err: coerceError(err), conversationId }, 'could not mark messages read'));
  }

  private async quoted(jid: string, inReplyTo: number | undefined): Promise<WAMessage | undefined> {
    if (!inReplyTo) return undefined;
    const waId = await this.deps.redis.get(this.deps.keys.cwToWa(this.deps.instanceKey, inReplyTo));
    if (!waId) return undefined;
    const fromMe = (await this.deps.redis.exists(this.deps.keys.outWa(this.deps.instanceKey, waId))) === 1;
    return { key: { remoteJid: jid, id: waId, fromMe }, message: { conversation: '' } };
  }

  private async mediaPart(a: OutboundAttachment, caption: string | undefined): Promise<Part> {
    const max = this.deps.config.outbound.mediaMaxBytes;
    if (a.size !== undefined && a.size > max) throw new OutboundRejected(`the attachment is larger than ${Math.round(max / 1048576)} MiB`);
    let fetched: Awaited<ReturnType<AttachmentFetcher['fetchToFile']>>;
    try {
      fetched = await this.deps.attachments.fetchToFile(a.url);
    } catch (err) {
      const e = coerceError(err);
      if (!(e instanceof AttachmentFetchError)) throw e;
      // The agent sees plain words; the host, status and remote text stay in the log.
      this.deps.log.warn({ err: e, reason: e.reason }, 'attachment download failed');
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
    const parts = await this.records.sentParts(j.messageId);
    for (const waId of Object.values(parts)) {
      const part = await this.records.partOf(waId);
      if (!part?.jid) continue;
      await socket.sendMessage(part.jid, { delete: { remoteJid: part.jid, id: waId, fromMe: true } });
    }
  }

  /** What this number sent as the key's id, for a recipient's retry receipt (Baileys' `getMessage`). */
  async sentMessage(key: WAMessageKey): Promise<proto.IMessage | undefined> {
    const body = key.id ? await this.records.sentBody(key.id) : undefined;
    return body ? proto.Message.decode(body) : undefined;
  }

  /**
   * The recorded part WhatsApp answered about; undefined for a message that is
   * not Ponte's, or for a part still being sent, whose answer is then kept for
   * the send to apply once the part is recorded (a refusal wins over a receipt).
   */
  private async sentPart(waId: string, answer: { code?: string; status?: number }): Promise<SentPart | undefined> {
    const wasSending = this.sending.has(waId);
    const part = await this.records.partOf(waId);
    if (part || !wasSending) return part;
    // Recorded while it was read: the send has already looked for early answers, so this one is applied here.
    if (!this.sending.has(waId)) return this.records.partOf(waId);
    const kept = this.early.get(waId) ?? {};
    this.early.set(waId, kept.code !== undefined ? kept : answer.code !== undefined ? { code: answer.code } : { status: Math.max(kept.status ?? 0, answer.status ?? 0) });
    return undefined;
  }

  /** A WhatsApp receipt (or the status of an own echo) for a sent part: the message shows the lowest status of its parts, never going back. */
  async onReceipt(waId: string, waStatus: number): Promise<void> {
    if (!WA_RECEIPT_STATUS[waStatus]) return;
    const part = await this.sentPart(waId, { status: waStatus });
    if (!part) return;
    const status: CwMessageStatus | undefined = await this.records.receipt(part, waStatus);
    if (status && (await this.records.raise(part.messageId, part.conversationId, status))) this.reporter.request(part.messageId);
  }
}

/** A bot message's steps as parts: cards carry their caption on the image. */
function botPlan(bot: BotRendering): PlanStep[] {
  return bot.steps.map((s): PlanStep => {
    if (s.kind === 'text') return { text: s.text };
    if (s.kind === 'poll') return { poll: { name: s.name, values: s.values } };
    return { attachment: { url: s.imageUrl, fileType: 'image', fileName: cardFileName(s.imageUrl) }, text: s.caption, card: true };
  });
}

function cardFileName(url: string): string {
  const last = URL.canParse(url) ? new URL(url).pathname.split('/').pop() : undefined;
  return last || 'card.jpg';
}

/** Chatwoot (or its storage) unreachable or overloaded: not the message's fault. */
function isChatwootOutage(err: Error): boolean {
  if (err instanceof ChatwootError) return err.retryable || err.kind === 'lost_response';
  if (err instanceof AttachmentFetchError) {
    // A 404 may be a file Chatwoot has not stored yet: that one counts as the message's attempt.
    return err.retryable && !(err.reason === 'http_status' && err.status === 404);
  }
  return false;
}

function isDisconnect(err: unknown): boolean {
  const code = (err as { output?: { statusCode?: unknown } } | undefined)?.output?.statusCode;
  return typeof code === 'number' && DISCONNECTED_CODES.has(code);
}
