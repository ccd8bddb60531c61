/**
 * The IPC contract between the primary and its workers: messages, control operations and error codes.
 *
 * Messages between the primary and its workers (node:cluster IPC). The
 * primary assigns instances and forwards control calls; workers report
 * readiness, instance status and events. Plain JSON objects only.
 */
import { AppError } from '../lib/errors.js';
import type { InstanceStatus } from '../model/instance.js';

export type PrimaryToWorker =
  | { type: 'assign'; instanceKey: string; delayMs?: number }
  | { type: 'unassign'; instanceKey: string }
  | { type: 'request'; id: number; op: WorkerOp; instanceKey: string; args?: unknown }
  | { type: 'shutdown' };

export type WorkerOp =
  | 'status'
  | 'logout'
  | 'pairing-code'
  | 'replay'
  | 'import'
  | 'contacts'
  | 'send'
  | 'sandbox.scan'
  | 'sandbox.message'
  | 'sandbox.messages'
  | 'sandbox.history'
  | 'sandbox.receipt'
  | 'sandbox.disconnect'
  | 'sandbox.call'
  | 'sandbox.group'
  | 'sandbox.limits';

/** Something that happened to an instance (a QR shown, linked, an alert, a new state). */
export type WorkerEvent = Extract<WorkerToPrimary, { type: 'event' }>;

/** A worker's answer to one control operation. */
export type ControlHandler = (instanceKey: string, args: Record<string, unknown>) => Promise<unknown>;

export type WorkerToPrimary =
  | { type: 'ready'; slot: number }
  | { type: 'status'; slot: number; instances: InstanceStatus[]; memory: { rss: number; heapUsed: number }; cpuUs: number }
  | { type: 'event'; instanceKey: string; event: 'qr' | 'open' | 'alert' | 'state' | 'import' | 'contacts'; data: Record<string, unknown> }
  | { type: 'response'; id: number; ok: true; result: unknown }
  | { type: 'response'; id: number; ok: false; error: { code: ControlCode; message: string } };

/**
 * The stable codes a control call fails with, across IPC: the HTTP layer
 * maps each to a status in one table (`primary/http/errors.ts`). Errors
 * raised in a worker with one of these codes cross as they are; any other
 * is `internal`, its details in the worker's log.
 */
export const CONTROL_CODES = [
  'bad_request',
  'not_found',
  'not_running',
  'no_qr',
  'not_connected',
  'worker_unavailable',
  'worker_gone',
  'timeout',
  'internal',
  'SANDBOX_STATE',
  'SANDBOX_UNKNOWN_MESSAGE',
  'UNKNOWN_POLL',
  'INVALID_INSTANCE_KEY',
  'NOT_AWAITING_SCAN',
  'not_configured',
  'chatwoot_refused',
  'chatwoot_unavailable',
  'not_on_whatsapp',
  'attachment_refused',
  'opted_out',
] as const;
export type ControlCode = (typeof CONTROL_CODES)[number];

export function isControlCode(code: unknown): code is ControlCode {
  return typeof code === 'string' && (CONTROL_CODES as readonly string[]).includes(code);
}

/** An error a control call answers with. */
export class ControlError extends AppError {
  constructor(
    readonly code: ControlCode,
    message: string,
  ) {
    super(message);
  }
}
