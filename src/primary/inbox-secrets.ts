/** Each Ponte inbox's webhook signing secret, read from Chatwoot and kept so verifying a webhook never waits on it. */
import type { Redis } from 'ioredis';
import type { ChatwootClientLike } from '../chatwoot/types.js';
import { ChatwootError } from '../chatwoot/errors.js';
import { backoffDelayMs } from '../lib/backoff.js';
import { coerceError } from '../lib/errors.js';
import { parseInstanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';

export interface InboxSecretsDeps {
  chatwoot: ChatwootClientLike;
  redis: Redis;
  keys: RedisKeys;
  log: Logger;
  /** First and longest pause between reads while Chatwoot cannot be asked. */
  retryDelayMs?: { min: number; max: number };
  /** A signature mismatch re-reads the secret at most this often per inbox (Chatwoot's "reset secret"). */
  refreshEveryMs?: number;
  /** Longest a webhook waits for that re-read. */
  refreshTimeoutMs?: number;
}

/**
 * Chatwoot signs an API inbox's webhooks with that inbox's own secret
 * (DESIGN.md, Decisions 9), visible to an administrator token in
 * `GET /inboxes/{id}`. Each secret is read when its instance opens and
 * retried with backoff until Chatwoot answers (a failed read never leaves
 * checks off silently); the last one read is kept in Redis, so a restart
 * during a Chatwoot outage still verifies. After Chatwoot's "reset secret",
 * the first mismatching webhook triggers one re-read before it is refused.
 */
export class InboxSecrets {
  private readonly secrets = new Map<string, string>();
  /** Inboxes whose secret Chatwoot does not show (an older Chatwoot, or a token that is not an administrator). */
  private readonly none = new Set<string>();
  private readonly learning = new Map<string, Promise<void>>();
  private readonly refreshing = new Map<string, Promise<string | undefined>>();
  private readonly lastRefreshAtMs = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly deps: InboxSecretsDeps) {}

  /** The secret known for the instance's inbox, if any. */
  current(instanceKey: string): string | undefined {
    return this.secrets.get(instanceKey);
  }

  /** Loads the secrets kept in Redis (before the first webhook), then reads each from Chatwoot in the background. */
  async load(instanceKeys: readonly string[]): Promise<void> {
    if (instanceKeys.length > 0) {
      const cached = await this.deps.redis.mget(...instanceKeys.map((k) => this.deps.keys.inboxSecret(k)));
      instanceKeys.forEach((k, i) => {
        const v = cached[i];
        if (v) this.secrets.set(k, v);
      });
    }
    for (const k of instanceKeys) this.learn(k);
  }

  /** Reads the instance's secret from Chatwoot, retrying with backoff until it answers. One read at a time per inbox. */
  learn(instanceKey: string): void {
    if (this.learning.has(instanceKey) || this.closed) return;
    const p = this.learnLoop(instanceKey).finally(() => this.learning.delete(instanceKey));
    this.learning.set(instanceKey, p);
  }

  /**
   * Reads the instance's secret now (an inbox Ponte has just created) and
   * resolves with it; undefined when Chatwoot shows none. When Chatwoot
   * cannot answer, the background reads of {@link learn} take over and this
   * resolves undefined at once.
   */
  async readNow(instanceKey: string): Promise<string | undefined> {
    try {
      return await this.read(instanceKey);
    } catch (err) {
      // An outage: retried in the background (which logs it), never left unread.
      if (!(err instanceof ChatwootError)) throw err;
      this.learn(instanceKey);
      return undefined;
    }
  }

  private async learnLoop(instanceKey: string): Promise<void> {
    const min = this.deps.retryDelayMs?.min ?? 2000;
    const max = this.deps.retryDelayMs?.max ?? 300_000;
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        await this.read(instanceKey);
        return;
      } catch (err) {
        const delay = backoffDelayMs(attempt, min, max);
        const e = coerceError(err);
        const level = attempt === 1 ? 'warn' : 'debug';
        this.deps.log[level]({ err: e, instanceId: instanceKey, delayMs: delay }, this.secrets.has(instanceKey) ? 'could not re-read the inbox signing secret; the one kept is used meanwhile' : 'could not read the inbox signing secret yet: retrying');
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            this.timers.delete(t);
            resolve();
          }, delay);
          t.unref();
          this.timers.add(t);
        });
      }
    }
  }

  /** One read; a definitive answer (a secret, or none visible) settles it, an outage throws. */
  private async read(instanceKey: string): Promise<string | undefined> {
    const ref = parseInstanceKey(instanceKey);
    if (!ref) return undefined;
    let secret: string | undefined;
    try {
      const inbox = await this.deps.chatwoot.getInbox(ref.accountId, ref.inboxId);
      secret = inbox.secret ?? undefined;
    } catch (err) {
      if (err instanceof ChatwootError && !err.retryable) {
        // 404 (the inbox is gone) or 403: nothing to learn until the operator acts.
        this.deps.log.warn({ err, instanceId: instanceKey }, 'Chatwoot refused to show the inbox; its webhooks are checked by the last secret known, or the token alone');
        return this.secrets.get(instanceKey);
      }
      throw err;
    }
    if (!secret) {
      if (!this.none.has(instanceKey)) this.deps.log.info({ instanceId: instanceKey }, 'no inbox signing secret visible to this token (Chatwoot before 4.13, or not an administrator): inbox webhooks are checked by token only');
      this.none.add(instanceKey);
      return this.secrets.get(instanceKey);
    }
    this.none.delete(instanceKey);
    if (this.secrets.get(instanceKey) !== secret) {
      this.secrets.set(instanceKey, secret);
      await this.deps.redis.set(this.deps.keys.inboxSecret(instanceKey), secret).catch((err: unknown) => {
        this.deps.log.warn({ err: coerceError(err), instanceId: instanceKey }, 'could not keep the inbox signing secret in Redis');
      });
    }
    return secret;
  }

  /**
   * After a signature mismatch: re-reads the secret (at most once per
   * `refreshEveryMs` per inbox, waiting at most `refreshTimeoutMs`) and
   * returns it when it changed, else undefined.
   */
  async refresh(instanceKey: string): Promise<string | undefined> {
    const before = this.secrets.get(instanceKey);
    let p = this.refreshing.get(instanceKey);
    if (!p) {
      const last = this.lastRefreshAtMs.get(instanceKey) ?? 0;
      if (Date.now() - last < (this.deps.refreshEveryMs ?? 10_000)) return undefined;
      this.lastRefreshAtMs.set(instanceKey, Date.now());
      p = this.read(instanceKey).finally(() => this.refreshing.delete(instanceKey));
      this.refreshing.set(instanceKey, p);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.deps.refreshTimeoutMs ?? 2000);
      timer.unref();
    });
    const fresh = await Promise.race([p.catch((err: unknown) => {
      this.deps.log.warn({ err: coerceError(err), instanceId: instanceKey }, 'could not re-read the inbox signing secret');
      return undefined;
    }), timeout]);
    clearTimeout(timer);
    return fresh !== undefined && fresh !== before ? fresh : undefined;
  }

  /** Forgets an instance (deleted). */
  forget(instanceKey: string): void {
    this.secrets.delete(instanceKey);
    this.none.delete(instanceKey);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
