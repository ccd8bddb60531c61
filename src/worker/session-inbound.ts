/** Hands a socket's `messages.upsert` events over to the instance's inbound queue, in the order they came. */
import type { BaileysEventMap, WAMessage } from '@whiskeysockets/baileys';
import type { Logger } from '../observability/logger.js';
import type { InboundMessage } from '../model/inbound.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { coerceError } from '../lib/errors.js';
import { pause } from '../lib/pause.js';
import { normalizeMessage } from '../whatsapp/normalize.js';
import { withPhoneNumber } from './lid-number.js';

/** The part of a socket's event emitter this binding listens on. */
export interface UpsertSource {
  on(event: 'messages.upsert', listener: (arg: BaileysEventMap['messages.upsert']) => void): void;
  off(event: 'messages.upsert', listener: (arg: BaileysEventMap['messages.upsert']) => void): void;
}

export interface SessionInboundDeps {
  /**
   * Makes the message durable: into Redis, or (past a short budget, while
   * Redis is away) into the worker's local journal. Rejects only when it
   * could be stored nowhere.
   */
  handOver(message: InboundMessage, receivedAtMs: number): Promise<unknown>;
  log: Logger;
  /** Group messages are dropped for this instance (GROUPS_IGNORED). */
  ignoreGroups?: boolean;
  /** True for the echo of a message Ponte itself sent (outbound), which must not come back in. */
  isOwnSend?(waId: string): boolean;
  /** The phone-number JID WhatsApp gave this number for a LID, for a message that came by LID alone. */
  pnForLid?(lidJid: string): Promise<string | undefined>;
  /** First and longest wait between attempts while neither Redis nor the journal takes a message. */
  retryDelayMs?: { min: number; max: number };
  /** Longest `stop()` waits for messages still being handed over. */
  stopTimeoutMs?: number;
}

/**
 * Feeds a WhatsApp session's `messages.upsert` events into the instance's
 * inbound queue, in the order the socket delivered them.
 *
 * Both `notify` (live) and `append` (the backlog WhatsApp kept while the
 * session was offline, and echoes of messages sent from this socket) are
 * relayed: ignoring `append` loses messages. Echoes of Ponte's own sends are
 * dropped; history (`messaging-history.set`) never arrives here: it goes to
 * the history import (`session-history.ts`).
 *
 * Baileys has acknowledged a message to WhatsApp before it reaches this
 * binding, so the window until it is durable is kept short: each message is
 * handed over at once, to Redis or, when Redis does not answer within its
 * budget, to the local journal. One failing link never breaks the chain.
 */
export class SessionInbound {
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly stopping = new AbortController();
  private readonly listener = (arg: BaileysEventMap['messages.upsert']): void => {
    const receivedAtMs = Date.now();
    const { messages, type } = arg;
    this.chain = this.chain
      .then(() => this.handle(messages, type, receivedAtMs))
      .catch((err: unknown) => this.deps.log.error({ err: coerceError(err) }, 'inbound hand-over failed'));
  };

  constructor(
    private readonly source: UpsertSource,
    private readonly deps: SessionInboundDeps,
  ) {
    source.on('messages.upsert', this.listener);
  }

  private async handle(messages: readonly WAMessage[], type: 'notify' | 'append', receivedAtMs: number): Promise<void> {
    for (const raw of messages) {
      const result = normalizeMessage(raw, type);
      if (!result.ok) {
        this.deps.log.debug({ waId: raw.key?.id, reason: result.reason }, 'upsert not relayed');
        continue;
      }
      if (result.message.fromMe && this.deps.isOwnSend?.(result.message.waId)) continue;
      if (this.deps.ignoreGroups && result.message.chatKind === 'group') continue;
      await this.handOver(await this.withNumber(result.message), receivedAtMs);
    }
  }

  private withNumber(message: InboundMessage): Promise<InboundMessage> {
    return withPhoneNumber(message, this.deps, this.deps.log);
  }

  private async handOver(message: InboundMessage, receivedAtMs: number): Promise<void> {
    const min = this.deps.retryDelayMs?.min ?? 200;
    const max = this.deps.retryDelayMs?.max ?? 5000;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deps.handOver(message, receivedAtMs);
        return;
      } catch (err) {
        if (this.stopped) {
          this.deps.log.error({ err: coerceError(err), waId: message.waId }, 'session stopped before a message could be stored');
          return;
        }
        const delayMs = backoffDelayMs(attempt, min, max, 0);
        this.deps.log.error({ err: coerceError(err), waId: message.waId, delayMs }, 'could not store an inbound message anywhere: retrying');
        await pause(delayMs, this.stopping.signal);
      }
    }
  }

  /** Stops listening and waits (at most `stopTimeoutMs`) until every message already received is stored. */
  async stop(): Promise<void> {
    this.source.off('messages.upsert', this.listener);
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.deps.stopTimeoutMs ?? 10_000);
      timer.unref();
    });
    const outcome = await Promise.race([this.chain.then(() => 'done' as const), bound]);
    clearTimeout(timer);
    // From here a hand-over that still fails gives up (and says so) instead of retrying forever.
    this.stopped = true;
    this.stopping.abort();
    if (outcome === 'timeout') this.deps.log.error('session stopped while messages were still being stored');
  }

  /** Resolves once everything received so far has been handed over (for tests and shutdown). */
  idle(): Promise<void> {
    return this.chain;
  }
}
