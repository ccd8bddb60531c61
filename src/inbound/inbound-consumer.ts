/** Drains one instance's inbound chats into Chatwoot, in order, through outages, on its worker process's shared queue. */
import { DelayedError, Worker, type Job } from 'bullmq';
import type { InboundEvent } from '../model/inbound.js';
import type { Logger } from '../observability/logger.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { coerceError } from '../lib/errors.js';
import { scheduleChats, type ChatJobData } from './inbound-queue.js';
import type { InboundStore, NextHead } from './inbound-store.js';
import type { InstanceJobs } from '../redis/instance-jobs.js';
import type { FailureClassifier } from './classify.js';
import { OutageBreaker } from '../lib/outage-breaker.js';

/** What delivering one event came to. */
export type DeliveryOutcome =
  | { kind: 'delivered'; conversationId: number; messageId: number }
  /** Nothing to relay (e.g. a message kind this instance ignores). */
  | { kind: 'ignored'; reason: string };

/**
 * Delivers one event of chat `chatId` (Ponte's chat id: the list it was
 * queued in). `cache` is the chat's cache as read with the head, which was
 * marked in flight in the same step; without it the deliverer reads and marks.
 */
export type Deliver = (event: InboundEvent, chatId: string, cache?: Readonly<Record<string, string>>) => Promise<DeliveryOutcome>;

export interface InboundConsumerOptions {
  /** Attempts for failures of the message itself (`BULLMQ_JOB_ATTEMPTS`). */
  attempts: number;
  /** First retry delay of a message-specific failure, doubling (`BULLMQ_JOB_BACKOFF_DELAY`). */
  backoffDelayMs: number;
  outageMinDelayMs: number;
  outageMaxDelayMs: number;
  rateLimitDelayMs: number;
  /** How often chats with events but no job are re-scheduled. */
  sweepIntervalMs: number;
}

export interface InboundConsumerDeps {
  store: InboundStore;
  /** The worker process's inbound jobs, shared by its instances. */
  jobs: InstanceJobs<ChatJobData>;
  deliver: Deliver;
  classify: FailureClassifier;
  log: Logger;
  options: InboundConsumerOptions;
  /** Called after each event reached Chatwoot (metrics, latency figures). */
  onDelivered?(event: InboundEvent, target: { conversationId: number; messageId: number }): void;
}

/**
 * Drains one instance's chats into Chatwoot.
 *
 * Each BullMQ job owns one chat and delivers its events head first until the
 * list is empty, so one chat is strictly ordered while chats proceed in
 * parallel (`CHATWOOT_QUEUE_CONCURRENCY` jobs at once per worker process,
 * over its instances). Failures map onto BullMQ without ever reordering:
 * - outage / rate limit → the process's queue pauses (`queue.rateLimit`:
 *   every instance talks to the same Chatwoot) and the job goes back to
 *   waiting with its attempts untouched;
 * - paced (per-conversation limit) → this chat's job is delayed;
 * - permanent → the event is parked and the chat goes on;
 * - anything else → this chat's job is delayed with exponential backoff,
 *   and after `attempts` the event is parked.
 */
export class InboundConsumer {
  private unregister: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly draining = new Set<Promise<void>>();
  readonly breaker: OutageBreaker;

  constructor(private readonly deps: InboundConsumerDeps) {
    const o = deps.options;
    this.breaker = new OutageBreaker({ minDelayMs: o.outageMinDelayMs, maxDelayMs: o.outageMaxDelayMs, rateLimitDelayMs: o.rateLimitDelayMs });
  }

  async start(): Promise<void> {
    const { jobs, store, options, log } = this.deps;
    this.unregister = jobs.register(store.instanceKey, (job, token) => this.track(this.drain(job, token)));
    await this.sweep();
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err: unknown) => log.warn({ err: coerceError(err) }, 'inbound sweep failed'));
    }, options.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  /** Re-adds the drain job of every chat that holds events (jobs that exist are left alone). */
  async sweep(): Promise<void> {
    await scheduleChats(this.deps.jobs.queue, this.deps.store.instanceKey, await this.deps.store.scheduled());
  }

  /** Lets the jobs in progress finish their current event (each then goes back to waiting), then stops. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      this.unregister?.();
      await Promise.allSettled([...this.draining]);
    })();
    return this.closing;
  }

  private track(p: Promise<void>): Promise<void> {
    this.draining.add(p);
    return p.finally(() => this.draining.delete(p));
  }

  private async drain(job: Job<ChatJobData>, token: string | undefined): Promise<void> {
    const { chatId } = job.data;
    const generation = job.data.generation ?? '1';
    // Each step hands over the next head (delivered ones skipped), so the steady state is one Redis round trip per message.
    let next = await this.deps.store.next(chatId, generation);
    while (next) {
      if (this.closing) throw Worker.RateLimitError();
      next = await this.deliverHead(job, token, chatId, generation, next);
    }
  }

  /** Delivers the head; returns the chat's next head, or `undefined` once the chat is empty (or no longer this job's). */
  private async deliverHead(job: Job<ChatJobData>, token: string | undefined, chatId: string, generation: string, { head, cache }: NextHead): Promise<NextHead | undefined> {
    const { store, deliver, classify, log, options } = this.deps;
    const queue = this.deps.jobs.queue;
    const waId = head.event.message.waId;
    try {
      const outcome = await deliver(head.event, chatId, cache);
      this.breaker.success();
      if (outcome.kind === 'delivered') {
        const next = await store.ack(chatId, generation, head, outcome);
        this.deps.onDelivered?.(head.event, outcome);
        return next;
      }
      await store.skip(chatId, head, 'ignored');
      return store.next(chatId, generation);
    } catch (thrown) {
      const failure = classify(thrown);
      const context = { instanceId: store.instanceKey, chatId, waId, code: failure.code };
      switch (failure.kind) {
        case 'outage':
        case 'rate_limited': {
          const delayMs = this.breaker.trip(failure.kind, failure.kind === 'rate_limited' ? failure.retryAfterMs : undefined);
          log.warn({ ...context, delayMs, reason: failure.message }, 'chatwoot unavailable: delivery paused');
          await queue.rateLimit(delayMs);
          throw Worker.RateLimitError();
        }
        case 'paced': {
          log.info({ ...context, delayMs: failure.delayMs }, 'conversation at its message rate limit: chat delayed');
          await job.moveToDelayed(Date.now() + failure.delayMs, token);
          throw new DelayedError();
        }
        case 'permanent': {
          log.error({ ...context, reason: failure.message }, 'chatwoot refused the message: parked');
          await store.park(chatId, head, { code: failure.code, message: failure.message });
          return store.next(chatId, generation);
        }
        case 'retry': {
          const attempts = await store.recordAttempt(waId);
          if (attempts >= options.attempts) {
            log.error({ ...context, attempts, reason: failure.message }, 'message failed on every attempt: parked');
            await store.park(chatId, head, { code: failure.code, message: failure.message });
            return store.next(chatId, generation);
          }
          const delayMs = backoffDelayMs(attempts, options.backoffDelayMs, Number.MAX_SAFE_INTEGER, 0);
          log.warn({ ...context, attempts, delayMs, reason: failure.message }, 'message delivery failed: retrying');
          await job.moveToDelayed(Date.now() + delayMs, token);
          throw new DelayedError();
        }
      }
    }
  }
}
