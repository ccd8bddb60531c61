/** Commands accepted from the account webhook, kept in Redis from their 200 until they are carried out. */
import type { Redis } from 'ioredis';
import { ChatwootError } from '../../chatwoot/errors.js';
import { backoffDelayMs } from '../../lib/backoff.js';
import { coerceError } from '../../lib/errors.js';
import { pause } from '../../lib/pause.js';
import type { Logger } from '../../observability/logger.js';
import type { RedisKeys } from '../../redis/keys.js';
import type { CommandContext, CommandEvent, Decision } from './authorize.js';

/** One accepted command delivery: its dedupe id (`<event>:<message id>`), the payload, and whether its signature was verified. */
export interface AcceptedCommand {
  id: string;
  payload: CommandEvent;
  signed: boolean;
  acceptedAtMs: number;
  /** The host that accepted it and runs it (several hosts on one prefix). */
  host?: string;
}

export interface CommandIntakeDeps {
  redis: Redis;
  keys: RedisKeys;
  log: Logger;
  authorize(payload: CommandEvent, signed: boolean): Promise<Decision>;
  handle(ctx: CommandContext): Promise<void>;
  /** Attempts while Chatwoot is unreachable (a command's replies need it), first delay doubling. */
  attempts?: number;
  retryDelayMs?: number;
  /** Commands older than this are dropped on resume instead of run (an operator no longer waits for them). */
  maxAgeMs?: number;
  /** This host, and whether another host is alive: at start-up only this host's commands and those of dead hosts are resumed. */
  hostId?: string;
  hostAlive?(hostId: string): Promise<boolean>;
}

// Newly accepted unless it is done or already pending: one run per delivery, whatever Chatwoot duplicates.
const ACCEPT = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
`;
const FINISH = `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))
return 1
`;

const DONE_TTL_S = 86_400;

/**
 * The command path between the webhook's 200 and the command's effect.
 * `accept` records a delivery in a Redis hash of pending commands (or says it
 * is a repeat) and starts it; the record is removed, and the delivery marked
 * done, only when the command has run. A shutdown waits for commands in
 * flight (`drain`), and what a crash cut off runs again at the next start
 * (`resume`). Commands whose replies cannot reach Chatwoot (an outage) are
 * retried with backoff.
 */
export class CommandIntake {
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;
  /** Aborted by `drain`: ends the pauses between retries at once. */
  private readonly stopping = new AbortController();

  constructor(private readonly deps: CommandIntakeDeps) {}

  private get pendingKey(): string {
    return `${this.deps.keys.prefix}cmd:pending`;
  }

  private doneKey(id: string): string {
    return `${this.deps.keys.prefix}cmd:done:${id}`;
  }

  /** Records the delivery and starts it; false for a repeat. Rejects while Redis is unreachable (the caller journals it). */
  async accept(command: AcceptedCommand): Promise<boolean> {
    const record: AcceptedCommand = this.deps.hostId ? { ...command, host: this.deps.hostId } : command;
    const fresh = (await this.deps.redis.eval(ACCEPT, 2, this.pendingKey, this.doneKey(command.id), command.id, JSON.stringify(record))) === 1;
    // During shutdown a command is only recorded: the next start runs it.
    if (fresh && !this.closed) this.start(command);
    else if (fresh) this.deps.log.info({ commandId: command.id }, 'command accepted during shutdown: it runs at the next start');
    return fresh;
  }

  /** Runs the commands an earlier process accepted and did not finish; returns how many. */
  async resume(): Promise<number> {
    const pending = await this.deps.redis.hgetall(this.pendingKey);
    const maxAgeMs = this.deps.maxAgeMs ?? 3_600_000;
    let n = 0;
    for (const raw of Object.values(pending)) {
      const command = JSON.parse(raw) as AcceptedCommand;
      if (!(await this.mayResume(command))) continue;
      if (Date.now() - command.acceptedAtMs > maxAgeMs) {
        this.deps.log.warn({ commandId: command.id }, 'pending command too old to run: dropped');
        await this.finish(command);
        continue;
      }
      this.start(command);
      n += 1;
    }
    if (n > 0) this.deps.log.info({ commands: n }, 'resuming commands an earlier run did not finish');
    return n;
  }

  /**
   * Ours, or a dead host's that no other host took first (one resumption
   * claim per command); another live host runs its own.
   */
  private async mayResume(command: AcceptedCommand): Promise<boolean> {
    const me = this.deps.hostId;
    if (!me || !command.host || command.host === me) return true;
    if (await this.deps.hostAlive?.(command.host)) return false;
    const claimed = await this.deps.redis.set(`${this.deps.keys.prefix}cmd:resumed:${command.id}`, me, 'PX', 3_600_000, 'NX');
    return claimed === 'OK';
  }

  /** Waits for the commands in flight, at most `timeoutMs`; true when none is left. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.closed = true;
    this.stopping.abort();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
    });
    const all = (async () => {
      while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
      return true as const;
    })();
    const done = await Promise.race([all, deadline]);
    clearTimeout(timer);
    return done;
  }

  get running(): number {
    return this.inFlight.size;
  }

  private start(command: AcceptedCommand): void {
    const p = this.run(command).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async run(command: AcceptedCommand): Promise<void> {
    const attempts = this.deps.attempts ?? 6;
    for (let attempt = 1; ; attempt++) {
      try {
        const decision = await this.deps.authorize(command.payload, command.signed);
        if (decision.act) await this.deps.handle(decision.ctx);
        else this.deps.log[decision.log]({ messageId: command.payload.id, inboxId: command.payload.inbox?.id, reason: decision.reason }, 'command message ignored');
        break;
      } catch (err) {
        const e = coerceError(err);
        // A reply whose answer was lost may be posted twice; a lost command would be worse.
        const outage = e instanceof ChatwootError && (e.retryable || e.kind === 'lost_response');
        if (!outage || attempt >= attempts || this.closed) {
          // Left pending on shutdown so the next start runs it; otherwise given up.
          if (outage && this.closed) {
            this.deps.log.warn({ err: e, commandId: command.id }, 'command interrupted by shutdown: it runs again at the next start');
            return;
          }
          this.deps.log.error({ err: e, commandId: command.id, attempt }, 'command failed');
          break;
        }
        const delay = backoffDelayMs(attempt, this.deps.retryDelayMs ?? 2000, 60_000);
        this.deps.log.warn({ err: e, commandId: command.id, attempt, delayMs: delay }, 'command could not reach Chatwoot: retrying');
        await pause(delay, this.stopping.signal);
        if (this.closed) {
          this.deps.log.warn({ commandId: command.id }, 'command interrupted by shutdown: it runs again at the next start');
          return;
        }
      }
    }
    await this.finish(command);
  }

  private async finish(command: AcceptedCommand): Promise<void> {
    await this.deps.redis.eval(FINISH, 2, this.pendingKey, this.doneKey(command.id), command.id, String(DONE_TTL_S)).catch((err: unknown) => {
      // The command ran; if Redis refuses the record now, the next start runs it again (its effects are repeatable).
      this.deps.log.warn({ err: coerceError(err), commandId: command.id }, 'could not record a command as done');
    });
  }
}
