/** The instances one worker runs: started and stopped as the primary assigns them, and the control calls it makes to them. */
import { type ControlHandler, ControlError, isControlCode, type WorkerToPrimary } from '../cluster/ipc.js';
import { coerceError } from '../lib/errors.js';
import { type ImportNotify, MAX_IMPORT_DAYS } from '../model/history-import.js';
import type { InstanceStatus } from '../model/instance.js';
import type { Logger } from '../observability/logger.js';
import type { AuthStore } from '../whatsapp/auth-store.js';
import { parseApiSendRequest } from './api-send.js';
import { InstanceRuntime, type InstanceRuntimeDeps } from './instance-runtime.js';

type ControlAnswer = Extract<WorkerToPrimary, { type: 'response' }>;

/** The days of an import request (the primary validated them; checked again at the boundary). */
function importDays(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_IMPORT_DAYS) throw new ControlError('bad_request', `days: must be a whole number from 1 to ${MAX_IMPORT_DAYS}`);
  return v;
}

/** Where an import request's progress goes, when it names a conversation. */
function importNotify(v: unknown): ImportNotify | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const n = v as Record<string, unknown>;
  if (typeof n.accountId !== 'number' || typeof n.conversationId !== 'number') return undefined;
  return { accountId: n.accountId, conversationId: n.conversationId, ...(n.private === true ? { private: true } : {}) };
}

export class InstanceHost {
  private readonly runtimes = new Map<string, InstanceRuntime>();
  /** Instances assigned with a delay (staggered restore) that have not started yet. */
  private readonly startTimers = new Map<string, NodeJS.Timeout>();
  private readonly handlers: Record<string, ControlHandler>;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      runtime: InstanceRuntimeDeps;
      auth: AuthStore;
      log: Logger;
      /** Control calls of the driver (the sandbox's), by operation. */
      driverHandlers?: Record<string, ControlHandler>;
    },
  ) {
    const running = (key: string): InstanceRuntime => {
      const rt = this.runtimes.get(key);
      if (!rt) throw new ControlError('not_running', `instance ${key} is not running`);
      return rt;
    };
    this.handlers = {
      status: async (key) => this.runtimes.get(key)?.status(),
      logout: async (key) => {
        const rt = this.runtimes.get(key);
        if (rt) await rt.session.logout();
        else await deps.auth.remove(key);
        return { ok: true };
      },
      replay: (key) => running(key).pipeline.replayParked(),
      import: (key, args) => running(key).pipeline.history.request(importDays(args.days), importNotify(args.notify)),
      contacts: (key, args) => running(key).pipeline.names.request(importNotify(args.notify)),
      send: (key, args) => running(key).apiSend.send(parseApiSendRequest(args)),
      'pairing-code': async (key, args) => ({ code: await running(key).session.requestPairingCode(typeof args.phone === 'string' ? args.phone.replace(/\D/g, '') : '') }),
      ...deps.driverHandlers,
    };
  }

  get size(): number {
    return this.runtimes.size;
  }

  get(instanceKey: string): InstanceRuntime | undefined {
    return this.runtimes.get(instanceKey);
  }

  /** Runs an instance, after `delayMs` (so many sessions do not reconnect in the same instant). */
  assign(instanceKey: string, delayMs = 0): void {
    if (this.runtimes.has(instanceKey) || this.closing) return;
    const rt = new InstanceRuntime(instanceKey, this.deps.runtime);
    this.runtimes.set(instanceKey, rt);
    const timer = setTimeout(() => {
      this.startTimers.delete(instanceKey);
      rt.start().catch((err: unknown) => this.deps.log.error({ err: coerceError(err), instanceId: instanceKey }, 'instance failed to start'));
    }, delayMs);
    this.startTimers.set(instanceKey, timer);
  }

  /** Stops an instance the primary took back (its session closes; the phone stays linked). */
  unassign(instanceKey: string): void {
    clearTimeout(this.startTimers.get(instanceKey));
    this.startTimers.delete(instanceKey);
    const rt = this.runtimes.get(instanceKey);
    this.runtimes.delete(instanceKey);
    void rt?.stop();
  }

  /**
   * Answers one control call. A failure with a code of the control contract
   * crosses as it is; any other is `internal`, its details logged here.
   */
  async answer(id: number, op: string, instanceKey: string, args: Record<string, unknown>): Promise<ControlAnswer> {
    try {
      const handler = this.handlers[op];
      if (!handler) throw new ControlError('bad_request', `unknown operation ${op}`);
      return { type: 'response', id, ok: true, result: await handler(instanceKey, args) };
    } catch (err) {
      const e = coerceError(err);
      const code = (e as { code?: unknown }).code;
      if (isControlCode(code)) return { type: 'response', id, ok: false, error: { code, message: e.message } };
      this.deps.log.error({ err: e, op, instanceId: instanceKey }, 'control call failed');
      return { type: 'response', id, ok: false, error: { code: 'internal', message: `${op} failed; see the worker log` } };
    }
  }

  /** The status of every instance that can tell it now. */
  async statuses(): Promise<InstanceStatus[]> {
    const all = await Promise.all([...this.runtimes.values()].map((rt) => rt.status().catch(() => undefined)));
    return all.filter((s) => s !== undefined);
  }

  /** Stops every instance; one whose staggered start has not come yet never starts. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.startTimers.values()) clearTimeout(t);
      this.startTimers.clear();
      await Promise.allSettled([...this.runtimes.values()].map((rt) => rt.stop()));
    })();
    return this.closing;
  }
}
