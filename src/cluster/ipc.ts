/**
 * Messages between the primary and its workers (node:cluster IPC). The
 * primary assigns instances and forwards control calls; workers report
 * readiness, instance status and events. Plain JSON objects only.
 */
import type { SessionState } from '../whatsapp/session.js';

/** What a worker reports about one of its instances. */
export interface InstanceStatus {
  instanceKey: string;
  state: SessionState;
  detail?: string;
  phone?: string;
  /** The QR currently shown, while awaiting a scan. */
  qr?: string;
  qrCount: number;
  lastDisconnect?: string;
  inbound: { received: number; relayed: number; parked: number; retried: number; pending: number };
  outbound: { sent: number; failed: number; pending: number };
  lastMessageAtMs?: number;
}

export type PrimaryToWorker =
  | { type: 'assign'; instanceKey: string; delayMs?: number }
  | { type: 'unassign'; instanceKey: string }
  | { type: 'request'; id: number; op: WorkerOp; instanceKey: string; args?: unknown }
  | { type: 'shutdown' };

export type WorkerOp =
  | 'status'
  | 'logout'
  | 'pairing-code'
  | 'sandbox.scan'
  | 'sandbox.message'
  | 'sandbox.receipt'
  | 'sandbox.disconnect'
  | 'sandbox.call'
  | 'sandbox.group';

export type WorkerToPrimary =
  | { type: 'ready'; slot: number }
  | { type: 'status'; slot: number; instances: InstanceStatus[]; memory: { rss: number; heapUsed: number } }
  | { type: 'event'; instanceKey: string; event: 'qr' | 'open' | 'alert' | 'state'; data: Record<string, unknown> }
  | { type: 'response'; id: number; ok: true; result: unknown }
  | { type: 'response'; id: number; ok: false; error: { code: string; message: string; status?: number } };

/** An error a control call answers with; `status` is the HTTP status the primary gives it. */
export class ControlError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 409,
  ) {
    super(message);
  }
}
