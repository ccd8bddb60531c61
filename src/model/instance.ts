/** An instance as the daemon sees it: its registry record (desired state) and what its worker reports. */
import type { BotOptionsStyle } from './bot-question.js';
import type { SessionState } from './session-state.js';

/** An instance's own choices over the global configuration (`POST /admin/instances/:instance/settings`); absent: the global one. */
export interface InstanceSettings {
  /** How bot questions' options go out on this number (`BOT_OPTIONS_STYLE` otherwise). */
  botOptionsStyle?: BotOptionsStyle;
}

/** A change of settings: a field given is set, `null` returns it to the global configuration, one left out stays. */
export type InstanceSettingsPatch = { [K in keyof InstanceSettings]?: Exclude<InstanceSettings[K], undefined> | null };

/** One WhatsApp number linked to one Chatwoot API inbox (DESIGN.md, Instances). */
export interface InstanceRecord {
  instanceKey: string;
  accountId: number;
  inboxId: number;
  desired: 'running' | 'stopped';
  /** Where operators are told about QR codes, links and alerts (the command's conversation); as private notes when `private`. */
  notify?: { accountId: number; conversationId: number; private?: boolean };
  settings?: InstanceSettings;
  createdAtMs: number;
  updatedAtMs: number;
}

/** Where an instance's history import stands, as `/global-status` shows it. */
export interface HistoryImportStatus {
  /** `running` while messages remain; `done` once each was created, skipped or failed. */
  state: 'running' | 'done';
  /** Chats the import's messages belong to. */
  chats: number;
  /** Messages taken into the import (those of its time window). */
  messages: number;
  /** Created in Chatwoot by the import. */
  created: number;
  /** Not created: in Chatwoot already (relayed live, or by an earlier import), Ponte's own replies, or nothing to show. */
  skipped: number;
  /** Refused by Chatwoot for good, or failed on every attempt. */
  errors: number;
}

/** Where an instance's latest contacts run stands (names from WhatsApp's contacts, `erga contacts`), as `/global-status` shows it. */
export interface ContactsRunStatus {
  /** `running` while contacts remain; `done` once each was seen; `stopped` when its process ended first. */
  state: 'running' | 'done' | 'stopped';
  /** Contacts of the run (WhatsApp's list of the number's contacts, or what Ponte keeps of it). */
  contacts: number;
  /** Chatwoot contacts created (`erga contacts` only). */
  created: number;
  /** Chatwoot contacts whose name became WhatsApp's. */
  updated: number;
  /** Left as they were: the name is WhatsApp's already, or an agent changed it in Chatwoot. */
  skipped: number;
  /** Refused by Chatwoot, or unreachable. */
  errors: number;
}

/**
 * What WhatsApp restricts a number with, each stopping proactive sends until
 * it ends: `reachout`, its reach-out time lock (error 463 or the lock it
 * announces); `cap`, its cap on new chats for the current cycle.
 */
export type SendRestriction = 'reachout' | 'cap';

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
  /** `held`: messages waiting for the send limiter (proactive sends), part of `pending`; `restricted`: WhatsApp's restriction stopping proactive sends now. */
  outbound: { sent: number; failed: number; pending: number; held?: number; restricted?: { kind: SendRestriction; untilMs: number } };
  lastMessageAtMs?: number;
  /** The latest history import, when there was one. */
  import?: HistoryImportStatus;
  /** The latest contacts run, when there was one. */
  contacts?: ContactsRunStatus;
}

/** A registry record with the host and worker slot that run it and its latest status, as the primary lists instances. */
export type InstanceView = InstanceRecord & { host?: string; slot?: number; status?: InstanceStatus };
