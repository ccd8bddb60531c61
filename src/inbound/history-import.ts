/** Imports the history WhatsApp sent an instance into Chatwoot: per chat oldest first, once, beside live delivery. */
import { rm } from 'node:fs/promises';
import type { ChatwootClientLike } from '../chatwoot/types.js';
import { ChatwootNotFoundError } from '../chatwoot/errors.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { coerceError } from '../lib/errors.js';
import { OutageBreaker } from '../lib/outage-breaker.js';
import { pause } from '../lib/pause.js';
import type { HistoryImportStatus } from '../model/instance.js';
import { authorOf, encodeRelayed, senderDigitsOf } from '../model/relayed.js';
import { waSourceId } from '../model/source-id.js';
import type { Logger } from '../observability/logger.js';
import type { FailureClassifier } from './classify.js';
import type { ChatTarget, ContactResolver } from './contact-resolver.js';
import type { ConversationPacer } from './conversation-pacer.js';
import type { HistoryMessage, HistoryStore, ImportRun, OldestMessage } from './history-store.js';
import type { ImportNotify, ImportReport } from '../model/history-import.js';
import { timePrefix, withTimePrefix } from './history-time.js';
import type { InboundStore } from './inbound-store.js';
import type { Relay } from './relay.js';
import { createBody } from './render.js';

/**
 * Of Chatwoot's per-conversation limit (the pacer keeps 180 of its 200 a
 * minute), what the import may take: the rest stays free for live messages.
 */
export const IMPORT_MESSAGES_PER_MINUTE = 120;

/** How long after the first of several history sets an import starts, so the sets WhatsApp sends in a row become one import. */
export const IMPORT_SETTLE_MS = 3000;

/** How long history arriving after `erga import` is imported into the window asked for (the phone answers within minutes). */
export const DEMAND_WINDOW_MS = 10 * 60_000;

/** Most chats asked for older history in one request, and messages per chat (the phone sends at most about 50 at a time). */
const DEMAND_MAX_CHATS = 200;
const DEMAND_COUNT = 50;

/** What an import request started or joined. */
export interface ImportRequestResult {
  /** An import is running now (started by this request or joined by it). */
  running: boolean;
  /** A new import started. */
  started: boolean;
  /** Messages this request added to the import. */
  messages: number;
  /** Chats whose older history the phone was asked for. */
  asked: number;
  days: number;
}

export interface HistoryImportDeps {
  history: HistoryStore;
  inbound: Pick<InboundStore, 'chatsOf' | 'claimForImport'>;
  resolver: Pick<ContactResolver, 'resolve' | 'forget'>;
  relay: Pick<Relay, 'render'>;
  client: ChatwootClientLike;
  /** Shared with live delivery: both together stay under Chatwoot's limit. */
  pacer: ConversationPacer;
  classify: FailureClassifier;
  /** The chat keys of a message, as the live path computes them. */
  aliasesOf(message: HistoryMessage['message']): { pn?: string; lid?: string; chatId: string };
  accountId: number;
  log: Logger;
  options: {
    /** `HISTORY_IMPORT_DAYS`: the window imported on its own when history arrives; 0 for none. */
    autoDays: number;
    attempts: number;
    backoffDelayMs: number;
    outageMinDelayMs: number;
    outageMaxDelayMs: number;
    rateLimitDelayMs: number;
    settleMs?: number;
  };
  /**
   * Whether the import may go on now: the instance's session is open (so it
   * holds the number's lease, and media can be downloaded).
   */
  canRun(): boolean;
  /** Asks the phone for messages older than `oldest` in its chat; false when the connection cannot. */
  requestOlder?: (oldest: OldestMessage, count: number) => Promise<boolean>;
  report(r: ImportReport): void;
  now?: () => number;
  /** Time zone of the time prefixes; the host's own when absent. */
  timeZone?: string;
}

type StepOutcome = { kind: 'done' } | { kind: 'again' } | { kind: 'wait'; ms: number };

/**
 * An instance's history import. History sets (`messaging-history.set`) are
 * kept in Redis as they come ({@link HistoryStore}); an import takes the
 * kept messages of its time window into a plan, one sorted set per chat, and
 * works through it chat by chat, oldest first, one message at a time, in its
 * own loop: live messages go through their own queue and never wait behind
 * it.
 *
 * Exactly once, beside the live path and across restarts: a message is
 * claimed with the live path's own `seen` mark before it is created (a live
 * copy arriving later is dropped as a repeat; one the live path has already
 * is skipped), and recorded with the same `WAID:` id mapping when created,
 * so a later import skips it. A create whose answer was lost (or whose
 * process died) is looked up in the conversation before it is sent again.
 *
 * Pacing: the import takes at most {@link IMPORT_MESSAGES_PER_MINUTE} of a
 * conversation's window in the pacer it shares with live delivery; a paced
 * chat waits while the others go on. A Chatwoot outage pauses the import
 * with backoff without counting against a message.
 *
 * Triggers: history arriving (after a link, and whenever WhatsApp sends
 * more) starts an import of the last `autoDays` days, a few seconds after
 * the first set so sets sent in a row become one; an operator's request
 * imports what Ponte keeps of the days asked for and asks the phone for the
 * older history of each chat it knows, which is taken in as it comes. A
 * request while an import runs widens it.
 */
export class HistoryImport {
  private chain: Promise<unknown> = Promise.resolve();
  private loop: Promise<void> | undefined;
  private launchWanted = false;
  private closing = false;
  private readonly stopping = new AbortController();
  private wakeUp: (() => void) | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private readonly pausedUntil = new Map<string, number>();
  private readonly breaker: OutageBreaker;
  private readonly now: () => number;

  constructor(private readonly deps: HistoryImportDeps) {
    const o = deps.options;
    this.breaker = new OutageBreaker({ minDelayMs: o.outageMinDelayMs, maxDelayMs: o.outageMaxDelayMs, rateLimitDelayMs: o.rateLimitDelayMs });
    this.now = deps.now ?? Date.now;
  }

  /** One change of the import at a time: a set taken in, a request, the end of a run. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Resumes a run a previous process left (a restart, a crash), or starts one for kept history of the window. */
  async start(): Promise<void> {
    const run = await this.deps.history.run();
    if (run?.state === 'running') this.launch();
    else this.scheduleAuto();
  }

  /** The session opened: a waiting run goes on, and kept history of the window is imported. */
  wake(): void {
    this.wakeUp?.();
    this.scheduleAuto();
  }

  /** The latest run's status, if there was one. */
  async status(): Promise<HistoryImportStatus | undefined> {
    const run = await this.deps.history.run();
    if (!run) return undefined;
    const { state, chats, messages, created, skipped, errors } = run;
    return { state, chats, messages, created, skipped, errors };
  }

  /**
   * A history set arrived: its messages are kept, and imported when they are
   * in the running import's window, or an import of the window starts.
   */
  receive(messages: readonly HistoryMessage[], oldest: ReadonlyMap<string, OldestMessage>): Promise<void> {
    return this.exclusive(async () => {
      const added = await this.deps.history.keep(messages, oldest, this.now());
      this.deps.log.info({ messages: messages.length, added }, 'history set kept');
      const run = await this.deps.history.run();
      if (run?.state !== 'running') return false;
      await this.planSince(run.sinceS);
      this.launch();
      return true;
    }).then((joined) => {
      if (!joined) this.scheduleAuto();
    });
  }

  /** Starts an import of the window shortly (sets sent in a row become one import), unless one runs. */
  private scheduleAuto(): void {
    if (this.settleTimer || this.closing) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      void this.exclusive(() => this.autoStart()).catch((err: unknown) => this.deps.log.warn({ err: coerceError(err) }, 'could not start the history import'));
    }, this.deps.options.settleMs ?? IMPORT_SETTLE_MS);
    this.settleTimer.unref();
  }

  private async autoStart(): Promise<void> {
    if (this.closing) return;
    if ((await this.deps.history.run())?.state === 'running') return;
    const demand = await this.deps.history.demand();
    const asked = demand && demand.untilMs > this.now() ? demand : undefined;
    const days = this.deps.options.autoDays;
    const sinceS = asked ? asked.sinceS : days > 0 ? Math.floor(this.now() / 1000) - days * 86_400 : undefined;
    if (sinceS === undefined || (await this.deps.history.countSince(sinceS)) === 0) return;
    await this.begin({ sinceS, ...(asked ? { demandUntilMs: asked.untilMs, demandSinceS: asked.sinceS, ...(asked.notify ? { notify: asked.notify } : {}) } : {}) });
  }

  /** A new run of the window: planned, reported, and worked through. */
  private async begin(o: { sinceS: number; notify?: ImportNotify; demandUntilMs?: number; demandSinceS?: number }): Promise<number> {
    await this.deps.history.startRun(o, this.now());
    const planned = await this.planSince(o.sinceS);
    const run = await this.deps.history.run();
    if (run) this.report('start', run);
    this.deps.log.info({ messages: planned, sinceS: o.sinceS }, 'history import started');
    this.launch();
    return planned;
  }

  /** Takes every kept message at least as recent as `sinceS` into the running import; returns how many. */
  private async planSince(sinceS: number): Promise<number> {
    let planned = 0;
    for (;;) {
      const batch = await this.deps.history.keptSince(sinceS, 1000);
      if (batch.length === 0) return planned;
      const chats = await this.deps.inbound.chatsOf(batch.map((m) => this.deps.aliasesOf(m.message)));
      const n = await this.deps.history.plan(batch, chats);
      planned += n;
      if (n === 0) return planned;
    }
  }

  /**
   * An operator asks for the last `days` days: the phone is asked for the
   * older history of each chat Ponte knows, and what Ponte keeps of the
   * window is imported (the running import widened, or a new one).
   */
  request(days: number, notify?: ImportNotify): Promise<ImportRequestResult> {
    return this.exclusive(async () => {
      const nowMs = this.now();
      const sinceS = Math.floor(nowMs / 1000) - days * 86_400;
      const asked = await this.askPhone(sinceS);
      const demand = asked > 0 ? { demandUntilMs: nowMs + DEMAND_WINDOW_MS, demandSinceS: sinceS } : {};
      const run = await this.deps.history.run();
      if (run?.state === 'running') {
        const widened = Math.min(run.sinceS, sinceS);
        await this.deps.history.updateRun({ sinceS: widened, ...(notify ? { notify } : {}), ...demand });
        const messages = await this.planSince(widened);
        this.launch();
        return { running: true, started: false, messages, asked, days };
      }
      if ((await this.deps.history.countSince(sinceS)) === 0) {
        // Nothing kept yet: what the phone sends in answer starts the import, into this window.
        if (asked > 0) await this.deps.history.updateRun({ ...(notify ? { notify } : {}), ...demand });
        return { running: false, started: false, messages: 0, asked, days };
      }
      const messages = await this.begin({ sinceS, ...(notify ? { notify } : {}), ...demand });
      return { running: true, started: true, messages, asked, days };
    });
  }

  /** Asks the phone for history older than each known chat's oldest message, where that is inside the window. */
  private async askPhone(sinceS: number): Promise<number> {
    const requestOlder = this.deps.requestOlder;
    if (!requestOlder || !this.deps.canRun()) return 0;
    const chats = [...(await this.deps.history.oldest()).values()].filter((o) => o.timestampS > sinceS).slice(0, DEMAND_MAX_CHATS);
    let asked = 0;
    for (const oldest of chats) {
      try {
        if (await requestOlder(oldest, DEMAND_COUNT)) asked += 1;
      } catch (err) {
        // The phone not answering one chat's request leaves what Ponte keeps to import.
        this.deps.log.warn({ err: coerceError(err) }, 'could not ask the phone for older history');
      }
    }
    return asked;
  }

  /** Forgets the kept history and the import (the number was unlinked): nothing of it goes to another link. */
  clear(): Promise<void> {
    return this.exclusive(() => this.deps.history.clear());
  }

  /** Runs the loop, or has the running one look again before it ends (a run may begin just as it finishes). */
  private launch(): void {
    this.launchWanted = true;
    if (this.loop || this.closing) return;
    this.launchWanted = false;
    this.loop = this.runLoop()
      .catch((err: unknown) => this.deps.log.error({ err: coerceError(err) }, 'history import stopped by an error; it resumes at the next start'))
      .finally(() => {
        this.loop = undefined;
        if (this.launchWanted) this.launch();
      });
  }

  /** Waits `ms`, or until woken (the session opened) or closed. */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.stopping.signal.removeEventListener('abort', done);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.stopping.signal.addEventListener('abort', done);
      this.wakeUp = done;
    });
  }

  private async runLoop(): Promise<void> {
    for (let failures = 0; !this.closing; ) {
      try {
        if (!(await this.iterate())) return;
        failures = 0;
      } catch (err) {
        // Redis or a bug: the plan is in Redis, so the loop waits and takes it up again.
        failures += 1;
        const delayMs = backoffDelayMs(failures, 1000, 60_000, 0.2);
        this.deps.log.warn({ err: coerceError(err), delayMs }, 'history import step failed: retrying');
        await this.idle(delayMs);
      }
    }
  }

  /** One pass over the chats with planned messages; false once no run is running (the loop ends). */
  private async iterate(): Promise<boolean> {
    const run = await this.deps.history.run();
    if (run?.state !== 'running') return false;
    if (!this.deps.canRun()) {
      await this.idle(1000);
      return true;
    }
    const chats = await this.deps.history.chats();
    if (chats.length === 0) {
      if (await this.exclusive(() => this.deps.history.endIfEmpty(this.now()))) {
        const done = await this.deps.history.run();
        if (done) this.report('end', done);
        this.deps.log.info({ created: done?.created, skipped: done?.skipped, errors: done?.errors }, 'history import done');
      }
      return true;
    }
    let progressed = false;
    let waitMs = Number.POSITIVE_INFINITY;
    for (const chat of chats) {
      if (this.closing || !this.deps.canRun()) break;
      const until = this.pausedUntil.get(chat) ?? 0;
      if (until > this.now()) {
        waitMs = Math.min(waitMs, until - this.now());
        continue;
      }
      const r = await this.drainChat(chat, run);
      progressed ||= r.progressed;
      if (r.waitMs !== undefined) {
        this.pausedUntil.set(chat, this.now() + r.waitMs);
        waitMs = Math.min(waitMs, r.waitMs);
      } else this.pausedUntil.delete(chat);
    }
    if (!progressed && Number.isFinite(waitMs)) await this.idle(Math.max(10, waitMs));
    return true;
  }

  /** Imports a chat's planned messages in order until none is left, or the chat must wait. */
  private async drainChat(chat: string, run: ImportRun): Promise<{ progressed: boolean; waitMs?: number }> {
    let progressed = false;
    while (!this.closing && this.deps.canRun()) {
      const head = await this.deps.history.head(chat);
      if (!head) return { progressed };
      const outcome = await this.step(chat, head, run);
      if (outcome.kind === 'wait') return { progressed, waitMs: outcome.ms };
      if (outcome.kind === 'done') progressed = true;
    }
    return { progressed };
  }

  /** One message: skipped, created, failed for good, or to be tried again (now or after a wait). */
  private async step(chat: string, head: HistoryMessage, run: ImportRun): Promise<StepOutcome> {
    const { message } = head;
    const waId = message.waId;
    let target: ChatTarget | undefined;
    try {
      const claim = await this.deps.inbound.claimForImport(waId);
      if (claim === 'mapped' || claim === 'own' || claim === 'live') return await this.finish(chat, waId, 'skipped', run);
      target = await this.deps.resolver.resolve(chat, message);
      // Claimed before: looked up only when its create went out (its answer lost, or its process gone).
      if (claim === 'again' && (await this.deps.history.inflight()) === waId) {
        const found = await this.findCreated(target, chat, waId);
        if (found !== undefined) return await this.finish(chat, waId, 'created', run, { target, head, messageId: found });
      }
      const waitMs = this.deps.pacer.reserve(target.conversationId, IMPORT_MESSAGES_PER_MINUTE);
      if (waitMs > 0) return { kind: 'wait', ms: waitMs };
      const outcome = await this.create(chat, head, target, run);
      this.breaker.success();
      return outcome;
    } catch (thrown) {
      return this.failed(chat, head, run, thrown, target);
    }
  }

  private async create(chat: string, head: HistoryMessage, target: ChatTarget, run: ImportRun): Promise<StepOutcome> {
    const { message } = head;
    const { client, accountId } = this.deps;
    const rendering = await this.deps.relay.render(message, chat);
    if (rendering.kind === 'skip') return this.finish(chat, message.waId, 'skipped', run);
    if (rendering.kind === 'delete') {
      // Deleted for everyone on WhatsApp by its sender: so it goes in Chatwoot too.
      await client.deleteMessage(accountId, rendering.target.conversationId, rendering.target.messageId).catch((err: unknown) => {
        if (!(err instanceof ChatwootNotFoundError)) throw err;
      });
      return this.finish(chat, message.waId, 'skipped', run);
    }
    const attachment = rendering.attachment;
    try {
      const body = createBody(rendering, message);
      // The original time in the content, since Chatwoot keeps external_created_at out of sight (chatwoot#15915).
      // It also keeps an old command from reading as one: a command starts with its keyword.
      body.content = withTimePrefix(body.content, timePrefix(message.timestampS, this.now(), this.deps.timeZone));
      await this.deps.history.markInflight(message.waId);
      const created = attachment
        ? await client.createMessageWithAttachments(accountId, target.conversationId, body, [attachment])
        : await client.createMessage(accountId, target.conversationId, body);
      return await this.finish(chat, message.waId, 'created', run, { target, head, messageId: created.id });
    } finally {
      // A spooled download is read once; a retry downloads again.
      if (attachment && 'file' in attachment) await rm(attachment.file, { force: true });
    }
  }

  private async failed(chat: string, head: HistoryMessage, run: ImportRun, thrown: unknown, target: ChatTarget | undefined): Promise<StepOutcome> {
    const waId = head.message.waId;
    if (thrown instanceof ChatwootNotFoundError && target) {
      // The conversation (or its contact) was deleted in Chatwoot: the cache is only a cache.
      this.deps.log.warn({ conversationId: target.conversationId }, 'conversation gone in Chatwoot: resolving again');
      await this.deps.resolver.forget(chat);
      this.deps.pacer.forget(target.conversationId);
      return { kind: 'again' };
    }
    const failure = this.deps.classify(thrown);
    const context = { chatId: chat, waId, code: failure.code };
    switch (failure.kind) {
      case 'outage':
      case 'rate_limited': {
        const delayMs = this.breaker.trip(failure.kind, failure.kind === 'rate_limited' ? failure.retryAfterMs : undefined);
        this.deps.log.warn({ ...context, delayMs, reason: failure.message }, 'chatwoot unavailable: history import paused');
        await pause(delayMs, this.stopping.signal);
        return { kind: 'again' };
      }
      case 'paced':
        return { kind: 'wait', ms: failure.delayMs };
      case 'permanent':
        this.deps.log.error({ ...context, reason: failure.message }, 'chatwoot refused a history message');
        return this.finish(chat, waId, 'errors', run);
      case 'retry': {
        const attempts = await this.deps.history.recordAttempt(waId);
        if (attempts >= this.deps.options.attempts) {
          this.deps.log.error({ ...context, attempts, reason: failure.message }, 'history message failed on every attempt');
          return this.finish(chat, waId, 'errors', run);
        }
        const delayMs = backoffDelayMs(attempts, this.deps.options.backoffDelayMs, Number.MAX_SAFE_INTEGER, 0);
        this.deps.log.warn({ ...context, attempts, delayMs, reason: failure.message }, 'history message failed: retrying');
        return { kind: 'wait', ms: delayMs };
      }
    }
  }

  /** Records a message's outcome (and its id mapping when created); reports each quarter of the way. */
  private async finish(chat: string, waId: string, counter: 'created' | 'skipped' | 'errors', run: ImportRun, created?: { target: ChatTarget; head: HistoryMessage; messageId: number }): Promise<StepOutcome> {
    const mapping = created
      ? {
          messageId: created.messageId,
          value: encodeRelayed({
            conversationId: created.target.conversationId,
            messageId: created.messageId,
            chatId: chat,
            chatKind: created.head.message.chatKind,
            author: authorOf(created.head.message),
            senderDigits: senderDigitsOf(created.head.message),
          }),
        }
      : undefined;
    const counts = await this.deps.history.finish(chat, waId, counter, mapping);
    const done = counts.created + counts.skipped + counts.errors;
    const quarter = counts.messages > 0 ? Math.floor((done * 4) / counts.messages) : 0;
    if (quarter > run.reported && quarter < 4) {
      run.reported = quarter;
      await this.deps.history.updateRun({ reported: quarter });
      const latest = await this.deps.history.run();
      if (latest) this.report('progress', latest);
    }
    return { kind: 'done' };
  }

  /**
   * A create whose answer never came: the message, if Chatwoot made it, is
   * after the last one the import created in the chat (or the chat's last
   * known one). Looked for page by page (100 each, at most 10).
   */
  private async findCreated(target: ChatTarget, chat: string, waId: string): Promise<number | undefined> {
    const sourceId = waSourceId(waId);
    let after = (await this.deps.history.anchor(chat)) ?? target.lastMessageId ?? 0;
    for (let page = 0; page < 10; page++) {
      const messages = await this.deps.client.listMessages(this.deps.accountId, target.conversationId, { after });
      const hit = messages.find((m) => m.source_id === sourceId);
      if (hit) return hit.id;
      if (messages.length < 100) return undefined;
      after = messages[messages.length - 1]!.id;
    }
    return undefined;
  }

  private report(phase: ImportReport['phase'], run: ImportRun): void {
    const { state, chats, messages, created, skipped, errors } = run;
    const done = created + skipped + errors;
    const percent = messages > 0 ? Math.floor((done * 100) / messages) : 100;
    const days = Math.max(0, Math.round((this.now() / 1000 - run.sinceS) / 86_400));
    this.deps.report({ phase, status: { state, chats, messages, created, skipped, errors }, days, percent, ...(run.notify ? { notify: run.notify } : {}) });
  }

  /** Stops after the message in progress (the run resumes at the next start). Idempotent. */
  async close(): Promise<void> {
    this.closing = true;
    this.stopping.abort();
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    this.wakeUp?.();
    await this.loop;
    await this.chain;
  }
}
