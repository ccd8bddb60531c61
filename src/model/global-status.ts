/** The shape of `GET /global-status`, which `/metrics` and `dashboard.sh` read too. */
import type { ContactsRunStatus, HistoryImportStatus, SendRestriction } from './instance.js';

/** `GET /global-status`: built from snapshots the workers push, never by touching sockets. */
export interface GlobalStatus {
  /** `cpuS`: CPU time the process has used, user and system, in seconds. */
  /** This host's primary (`host`: its HOST_ID). */
  primary: { host: string; pid: number; uptimeS: number; version: string; cpuS: number };
  /**
   * Every host on the Redis prefix seen in the last day: `alive` while it
   * renews its heartbeat (false within seconds of a host dying or freezing,
   * before its heartbeat expires), `draining` while it hands its numbers over
   * before stopping; `instances` and `open` count the numbers it runs.
   */
  hosts: Array<{
    id: string;
    self: boolean;
    alive: boolean;
    draining: boolean;
    pid: number | null;
    version: string | null;
    uptimeS: number | null;
    lastSeenAt: string;
    authStore: 'file' | 'redis' | null;
    workers: { total: number; ready: number } | null;
    instances: number;
    open: number;
  }>;
  /** This host's workers. */
  workers: Array<{ id: number; pid: number | null; ready: boolean; uptimeS: number | null; restarts: number; instances: number; memory: { rssBytes: number; heapUsedBytes: number } | null; cpuS: number | null }>;
  totals: { instances: number; open: number; received: number; relayed: number; sent: number; failed: number; retried: number; parked: number; inboundQueue: number; outboundQueue: number; outboundHeld: number };
  instances: Array<{
    instance: string;
    account: number;
    inbox: number;
    desired: 'running' | 'stopped';
    /** Its session's state, `starting` before the first report, `host_down` while its host has stopped answering. */
    state: string;
    phone: string | null;
    /** The HOST_ID of the host running it (null while it moves). */
    host: string | null;
    /** Its worker slot on that host. */
    worker: number | null;
    qrAttempts: number;
    counters: { received: number; relayed: number; sent: number; failed: number; retried: number; parked: number };
    /** `held`: agent messages to customers who have not written in 24 h waiting for the send limiter (also counted in `outbound`). */
    queues: { inbound: number; outbound: number; held: number };
    /** WhatsApp's restriction stopping proactive sends now (`reachout`: its reach-out lock; `cap`: its new-chat cap), until when; null when none. */
    restricted: { kind: SendRestriction; until: string } | null;
    lastMessageAt: string | null;
    lastError: string | null;
    /** The latest history import (`state` running or done, and its counts); null when there was none. */
    import: HistoryImportStatus | null;
    /** The latest contacts run (names from WhatsApp's contacts, `erga contacts`) and its counts; null when there was none. */
    contacts: ContactsRunStatus | null;
  }>;
}
