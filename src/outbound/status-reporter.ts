/** Reports agent messages' ticks and failures to Chatwoot: one update at a time per message, never a lower status. */
import type { ChatwootClientLike, CwMessageStatus } from '../chatwoot/types.js';
import { ChatwootError, ChatwootNotFoundError } from '../chatwoot/errors.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { coerceError } from '../lib/errors.js';
import { pause } from '../lib/pause.js';
import type { Logger } from '../observability/logger.js';
import type { OutboundRecords } from './outbound-records.js';

export interface StatusReporterDeps {
  records: OutboundRecords;
  chatwoot: ChatwootClientLike;
  accountId: number;
  log: Logger;
  /** First and longest pause while Chatwoot cannot take an update. */
  retryDelayMs: { min: number; max: number };
}

/**
 * The status a message should show lives in Redis (`OutboundRecords.raise`,
 * monotonic: `sent` < `delivered` < `read`, `failed` only before WhatsApp
 * accepted it). This class brings Chatwoot to it: per message one PATCH at
 * a time, always of the highest wanted status at the moment it is sent,
 * confirmed in Redis when Chatwoot answers. A PATCH that meets an outage is
 * retried with backoff on its own; it never fails the message. Messages
 * left unconfirmed by a crash or a shutdown are taken up by `resume`.
 */
export class StatusReporter {
  private readonly running = new Map<number, Promise<void>>();
  private readonly again = new Set<number>();
  private readonly stopping = new AbortController();
  private failures = 0;

  constructor(private readonly deps: StatusReporterDeps) {}

  /** Chatwoot should catch up with message `messageId` (its wanted status was raised). */
  request(messageId: number): void {
    if (this.stopping.signal.aborted) return;
    if (this.running.has(messageId)) {
      this.again.add(messageId);
      return;
    }
    const p = this.report(messageId).finally(() => {
      this.running.delete(messageId);
      if (this.again.delete(messageId)) this.request(messageId);
    });
    this.running.set(messageId, p);
  }

  /** Reports what an earlier run left unconfirmed. */
  async resume(): Promise<void> {
    for (const id of await this.deps.records.unreported()) this.request(id);
  }

  /** Stops retrying; unconfirmed updates stay recorded for the next start. Waits for the PATCHes in flight. */
  async close(): Promise<void> {
    this.stopping.abort();
    await Promise.allSettled([...this.running.values()]);
  }

  get pending(): number {
    return this.running.size;
  }

  private async report(messageId: number): Promise<void> {
    for (;;) {
      if (this.stopping.signal.aborted) return;
      const state = await this.deps.records.state(messageId);
      const want = state.want;
      if (!want || state.conversationId === undefined || want === state.reported) {
        if (want) await this.deps.records.confirm(messageId, want);
        return;
      }
      try {
        await this.patch(state.conversationId, messageId, want, state.reason);
        this.failures = 0;
        await this.deps.records.confirm(messageId, want);
      } catch (err) {
        const e = coerceError(err);
        if (e instanceof ChatwootNotFoundError) {
          // The message is gone in Chatwoot (deleted with its conversation): nothing left to show.
          await this.deps.records.drop(messageId);
          return;
        }
        if (!(e instanceof ChatwootError) || !(e.retryable || e.kind === 'lost_response')) {
          this.deps.log.error({ err: e, messageId, status: want }, 'Chatwoot refused a message status');
          await this.deps.records.drop(messageId);
          return;
        }
        this.failures += 1;
        const delay = backoffDelayMs(this.failures, this.deps.retryDelayMs.min, this.deps.retryDelayMs.max);
        this.deps.log.warn({ err: e, messageId, status: want, delayMs: delay }, 'Chatwoot unavailable: message status will be reported later');
        await pause(delay, this.stopping.signal);
      }
    }
  }

  private async patch(conversationId: number, messageId: number, status: CwMessageStatus, reason: string | undefined): Promise<void> {
    await this.deps.chatwoot.updateMessageStatus(this.deps.accountId, conversationId, messageId, status, status === 'failed' ? (reason ?? 'could not be sent on WhatsApp') : undefined);
  }
}
