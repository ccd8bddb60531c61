/** The shape of `GET /global-status`, which `/metrics` and `dashboard.sh` read too. */
import type { ContactsRunStatus, HistoryImportStatus } from './instance.js';

/** `GET /global-status`: built from snapshots the workers push, never by touching sockets. */
export interface GlobalStatus {
  /** `cpuS`: CPU time the process has used, user and system, in seconds. */
  primary: { pid: number; uptimeS: number; version: string; cpuS: number };
  workers: Array<{ id: number; pid: number | null; ready: boolean; uptimeS: number | null; restarts: number; instances: number; memory: { rssBytes: number; heapUsedBytes: number } | null; cpuS: number | null }>;
  totals: { instances: number; open: number; received: number; relayed: number; sent: number; failed: number; retried: number; parked: number; inboundQueue: number; outboundQueue: number; outboundHeld: number };
  instances: Array<{
    instance: string;
    account: number;
    inbox: number;
    desired: 'running' | 'stopped';
    state: string;
    phone: string | null;
    worker: number | null;
    qrAttempts: number;
    counters: { received: number; relayed: number; sent: number; failed: number; retried: number; parked: number };
    /** `held`: agent messages to customers who have not written in 24 h waiting for the send limiter (also counted in `outbound`). */
    queues: { inbound: number; outbound: number; held: number };
    lastMessageAt: string | null;
    lastError: string | null;
    /** The latest history import (`state` running or done, and its counts); null when there was none. */
    import: HistoryImportStatus | null;
    /** The latest contacts run (names from WhatsApp's contacts, `erga contacts`) and its counts; null when there was none. */
    contacts: ContactsRunStatus | null;
  }>;
}
