/**
 * The primary's start-up check of Chatwoot: `/readyz` stays false, with a reason, until the URL and token work.
 *
 * Runs {@link checkChatwootAccess} at start and again with backoff while it
 * fails; it never stops the daemon (webhooks keep being accepted into Redis,
 * workers keep running). One error line per distinct problem, one info line
 * when it passes. Once it has passed it is not repeated: a later Chatwoot
 * outage is the delivery breakers' business (DESIGN.md, Decisions 3), and a
 * `/readyz` that followed Chatwoot would make a load balancer turn away the
 * webhooks Chatwoot never retries (Decisions 7).
 */
import { ACCESS_PROBLEM_SUMMARY, type ChatwootAccessResult, type ChatwootAccessProblemKind } from '../chatwoot/access-check.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { coerceError } from '../lib/errors.js';
import type { Logger } from '../observability/logger.js';

export interface ChatwootStartupCheckDeps {
  /** One check; `checkChatwootAccess` over the daemon's client. */
  check: () => Promise<ChatwootAccessResult>;
  log: Logger;
  /** First pause after a failed check; doubles up to `maxDelayMs` (`OUTAGE_PROBE_MIN_DELAY_MS` / `OUTAGE_PROBE_MAX_DELAY_MS`). */
  minDelayMs: number;
  maxDelayMs: number;
  /** `DEFAULT_CHATWOOT_ACCOUNT_ID`, checked against the user's accounts. */
  defaultAccountId: number | undefined;
}

export type ChatwootCheckState = { state: 'checking' } | { state: 'ok' } | { state: 'failing'; kind: ChatwootAccessProblemKind | 'check_error'; summary: string };

export class ChatwootStartupCheck {
  private current: ChatwootCheckState = { state: 'checking' };
  private failures = 0;
  private loggedKind: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly deps: ChatwootStartupCheckDeps) {}

  get status(): ChatwootCheckState {
    return this.current;
  }

  get ok(): boolean {
    return this.current.state === 'ok';
  }

  /** Starts checking in the background. */
  start(): void {
    void this.run();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private async run(): Promise<void> {
    let result: ChatwootAccessResult | { ok: false; kind: 'check_error'; reason: string };
    try {
      result = await this.deps.check();
    } catch (err) {
      // A bug in the check itself must not stop the daemon either: it is retried like a failure.
      result = { ok: false, kind: 'check_error', reason: `the check failed: ${coerceError(err).message}` };
    }
    if (this.closed) return;
    if (result.ok) {
      this.passed(result);
      return;
    }
    this.failures++;
    const retryInMs = backoffDelayMs(this.failures, this.deps.minDelayMs, this.deps.maxDelayMs);
    const summary = result.kind === 'check_error' ? 'the Chatwoot check failed' : ACCESS_PROBLEM_SUMMARY[result.kind];
    this.current = { state: 'failing', kind: result.kind, summary };
    if (this.loggedKind !== result.kind) {
      this.loggedKind = result.kind;
      this.deps.log.error({ problem: result.kind, reason: result.reason }, `Chatwoot check failed: ${result.reason}; not ready until it passes (retrying with backoff)`);
    } else {
      this.deps.log.debug({ problem: result.kind, attempt: this.failures, retryInMs }, 'Chatwoot check failed again');
    }
    this.timer = setTimeout(() => void this.run(), retryInMs);
  }

  private passed(access: Extract<ChatwootAccessResult, { ok: true }>): void {
    this.current = { state: 'ok' };
    const { log, defaultAccountId } = this.deps;
    log.info(
      { user: access.user.email, accounts: access.accounts.map((a) => a.id), adminAccounts: access.adminAccounts.map((a) => a.id), recovered: this.failures > 0 },
      this.failures > 0 ? 'Chatwoot check passed after failing: ready' : 'Chatwoot check passed',
    );
    if (access.adminAccounts.length === 0) {
      log.warn("the token's user administers no Chatwoot account: Ponte cannot read inbox signing secrets (an administrator's token can), so it cannot verify Chatwoot's signature on inbox webhooks");
    }
    if (defaultAccountId !== undefined && !access.accounts.some((a) => a.id === defaultAccountId)) {
      log.warn({ defaultAccountId }, "DEFAULT_CHATWOOT_ACCOUNT_ID is not one of the token's user's accounts: commands that omit the account will fail");
    }
  }
}
