import type { BaileysEventMap, WAMessage } from '@whiskeysockets/baileys';
import type { Logger } from '../observability/logger.js';
import type { InboundMessage } from '../model/inbound.js';
import { coerceError } from '../lib/errors.js';
import { normalizeMessage } from '../whatsapp/normalize.js';

/** The part of a socket's event emitter this binding listens on. */
export interface UpsertSource {
  on(event: 'messages.upsert', listener: (arg: BaileysEventMap['messages.upsert']) => void): void;
  off(event: 'messages.upsert', listener: (arg: BaileysEventMap['messages.upsert']) => void): void;
}

export interface SessionInboundDeps {
  enqueue(message: InboundMessage, receivedAtMs: number): Promise<unknown>;
  log: Logger;
  /** Group messages are dropped for this instance (GROUPS_IGNORED). */
  ignoreGroups?: boolean;
  /** True for the echo of a message Ponte itself sent (outbound), which must not come back in. */
  isOwnSend?(waId: string): boolean;
  /** First and longest wait between attempts while Redis refuses the hand-over. */
  retryDelayMs?: { min: number; max: number };
}

/**
 * Feeds a WhatsApp session's `messages.upsert` events into the instance's
 * inbound queue, in the order the socket delivered them.
 *
 * Both `notify` (live) and `append` (the backlog WhatsApp kept while the
 * session was offline, and echoes of messages sent from this socket) are
 * relayed: ignoring `append` loses messages. Echoes of Ponte's own sends are
 * dropped; full history (`messaging-history.set`) never arrives here.
 * Hand-over to Redis is retried until it succeeds, so a Redis blip delays
 * messages and loses none.
 */
export class SessionInbound {
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly listener = (arg: BaileysEventMap['messages.upsert']): void => {
    const receivedAtMs = Date.now();
    const { messages, type } = arg;
    this.chain = this.chain.then(() => this.handle(messages, type, receivedAtMs));
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
      await this.handOver(result.message, receivedAtMs);
    }
  }

  private async handOver(message: InboundMessage, receivedAtMs: number): Promise<void> {
    const min = this.deps.retryDelayMs?.min ?? 200;
    const max = this.deps.retryDelayMs?.max ?? 5000;
    for (let delay = min; ; delay = Math.min(max, delay * 2)) {
      try {
        await this.deps.enqueue(message, receivedAtMs);
        return;
      } catch (err) {
        if (this.stopped) {
          this.deps.log.error({ err: coerceError(err), waId: message.waId }, 'session stopped before a message reached Redis');
          return;
        }
        this.deps.log.warn({ err: coerceError(err), waId: message.waId, delayMs: delay }, 'could not queue an inbound message: retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Stops listening and waits until every message already received is in Redis. */
  async stop(): Promise<void> {
    this.source.off('messages.upsert', this.listener);
    await this.chain;
    this.stopped = true;
  }

  /** Resolves once everything received so far has been handed over (for tests and shutdown). */
  idle(): Promise<void> {
    return this.chain;
  }
}
