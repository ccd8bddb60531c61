/** Control calls between hosts through Redis: a host asks the owner of an instance, the owner answers. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ControlError, isControlCode } from '../cluster/ipc.js';
import { coerceError } from '../lib/errors.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';

/** One call from a host to another. */
export interface HostCall {
  id: string;
  /** The calling host, where the answer goes. */
  from: string;
  op: string;
  instanceKey: string;
  args?: unknown;
  /** Past this (ms since the epoch) the caller gave up: the call is dropped unanswered. */
  deadlineMs: number;
}

type HostAnswer = { id: string; ok: true; result: unknown } | { id: string; ok: false; error: { code: string; message: string } };

export type HostCallHandler = (op: string, instanceKey: string, args: unknown, timeoutMs: number) => Promise<unknown>;

/** A list entry as JSON; an entry that is not (written by something else) is skipped. */
function parseJson<T>(raw: string): T | undefined {
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

/** How long one blocking read waits, so closing never waits longer. */
const BLOCK_S = 1;

/**
 * Calls travel on Redis lists: each host reads its own (`rpc:<host>`) and
 * its answers (`rpc-answers:<host>`) on two blocking connections of its own.
 * A call carries its deadline; one that waits past it (its host was down) is
 * dropped, and the caller has answered `timeout` by then. The owner runs
 * each call as it would a local one, so every operation (QR, pairing code,
 * sandbox control, the send API) works through any host.
 */
export class HostRpc {
  private readonly pending = new Map<string, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private readonly calls: Redis;
  private readonly answers: Redis;
  private closed = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly deps: { redis: Redis; keys: RedisKeys; hostId: string; handle: HostCallHandler; log: Logger },
  ) {
    this.calls = deps.redis.duplicate({ maxRetriesPerRequest: null, connectionName: `ponte-rpc:${deps.hostId}` });
    this.answers = deps.redis.duplicate({ maxRetriesPerRequest: null, connectionName: `ponte-rpc-answers:${deps.hostId}` });
    for (const c of [this.calls, this.answers]) c.on('error', (err) => deps.log.debug({ err }, 'redis connection error (host calls)'));
  }

  start(): void {
    const { keys, hostId } = this.deps;
    this.loops = [
      this.readLoop<HostCall>(this.calls, keys.hostCalls(hostId), (c) => this.onCall(c)),
      this.readLoop<HostAnswer>(this.answers, keys.hostAnswers(hostId), (a) => this.onAnswer(a)),
    ];
  }

  /** Calls `op` on `hostId`; rejects with the owner's ControlError, or `timeout`. */
  call(hostId: string, op: string, instanceKey: string, args: unknown, timeoutMs: number): Promise<unknown> {
    const id = randomBytes(8).toString('hex');
    const call: HostCall = { id, from: this.deps.hostId, op, instanceKey, args, deadlineMs: Date.now() + timeoutMs };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ControlError('timeout', `host ${hostId}, which runs ${instanceKey}, did not answer ${op}`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.push(this.deps.keys.hostCalls(hostId), call, Math.max(timeoutMs, 60_000)).catch((err: unknown) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(coerceError(err));
      });
    });
  }

  /** Reads `key` on its own blocking connection until closed, handing each JSON entry to `each`. */
  private async readLoop<T>(connection: Redis, key: string, each: (entry: T) => void): Promise<void> {
    while (!this.closed) {
      const got = await connection.blpop(key, BLOCK_S).catch(async () => {
        // Redis away or switching master: try again shortly, without spinning.
        await new Promise((r) => setTimeout(r, 200));
        return null;
      });
      const entry = got ? parseJson<T>(got[1]) : undefined;
      if (entry) each(entry);
    }
  }

  /** Appends to a call or answer list, which expires if nobody reads it (its host is down). */
  private push(key: string, entry: HostCall | HostAnswer, ttlMs: number): Promise<unknown> {
    return this.deps.redis.multi().rpush(key, JSON.stringify(entry)).pexpire(key, ttlMs).exec();
  }

  private onCall(call: HostCall): void {
    const left = call.deadlineMs - Date.now();
    if (left > 0) void this.run(call, left);
  }

  private async run(call: HostCall, timeoutMs: number): Promise<void> {
    let answer: HostAnswer;
    try {
      answer = { id: call.id, ok: true, result: (await this.deps.handle(call.op, call.instanceKey, call.args, timeoutMs)) ?? null };
    } catch (err) {
      const e = coerceError(err);
      const code = (e as { code?: unknown }).code;
      if (isControlCode(code)) answer = { id: call.id, ok: false, error: { code, message: e.message } };
      else {
        this.deps.log.error({ err: e, op: call.op, instanceId: call.instanceKey, from: call.from }, 'host call failed');
        answer = { id: call.id, ok: false, error: { code: 'internal', message: `${call.op} failed; see the log of host ${this.deps.hostId}` } };
      }
    }
    await this.push(this.deps.keys.hostAnswers(call.from), answer, 60_000).catch((err: unknown) => this.deps.log.warn({ err: coerceError(err), from: call.from }, 'could not answer a host call'));
  }

  private onAnswer(answer: HostAnswer): void {
    const p = this.pending.get(answer.id);
    if (!p) return;
    this.pending.delete(answer.id);
    clearTimeout(p.timer);
    if (answer.ok) p.resolve(answer.result);
    else p.reject(new ControlError(isControlCode(answer.error.code) ? answer.error.code : 'internal', answer.error.message));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.loops);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new ControlError('worker_unavailable', 'this host is stopping'));
    }
    this.pending.clear();
    await Promise.allSettled([this.calls.quit(), this.answers.quit()]);
  }
}
