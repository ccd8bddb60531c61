/** Decides whether an agent message goes now, waits for the limiter, or is refused (opt-out, WhatsApp's reach-out lock or new-chat cap); and the typing pause. */
import { randomInt } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';
import type { SendRestriction } from '../model/instance.js';
import { OptOuts, REPLY_WINDOW_MS, SendSafetyStore } from '../redis/send-safety.js';
import type { OutboundJob } from './inbox-events.js';

export type SafetyDecision = { action: 'go' } | { action: 'hold'; waitMs: number } | { action: 'refuse'; reason: string };

/** WhatsApp's error ack for a send its reach-out time lock forbids (the number may not start new chats). */
export const REACHOUT_REFUSAL = '463';

/** What Ponte reads of WhatsApp's count of the number's new chats (Baileys' `message-capping.update`). */
export interface NewChatCapInfo {
  total_quota?: number;
  used_quota?: number;
  /** Unix seconds, as a string. */
  cycle_end_timestamp?: string;
  /** `NONE`, `FIRST_WARNING`, `SECOND_WARNING` or `CAPPED`. */
  capping_status?: string;
}

export const OPTED_OUT_REASON = 'the customer opted out of WhatsApp messages (they wrote an opt-out keyword); it goes again once they write';

/** Words for an agent: why a proactive message did not go while WhatsApp restricts the number. */
export function restrictionReason(kind: SendRestriction, untilMs: number): string {
  if (kind === 'cap') return `WhatsApp's limit of new chats for this number is reached (until ${utcTime(untilMs)} UTC); the message was not delivered`;
  return `WhatsApp is temporarily restricting this number from starting new chats (until ${utcTime(untilMs)} UTC); the message was not delivered`;
}

/** `HH:MM` within the next 24 h, else `YYYY-MM-DD HH:MM`. */
export function utcTime(ms: number, nowMs = Date.now()): string {
  const iso = new Date(ms).toISOString();
  return ms - nowMs < 24 * 3600_000 ? iso.slice(11, 16) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/** How long "typing…" shows before a message: proportional to its text, 1 to 3 s. */
export function typingMs(text: string | null): number {
  return Math.min(3000, Math.max(1000, 500 + 40 * (text?.length ?? 0)));
}

const JID = /@(s\.whatsapp\.net|lid)$/;

/**
 * A message is proactive when its customer has not written within 24 h
 * (agent-started conversations, the send API). Replies are never limited,
 * nor are messages to groups.
 * Order of the checks: an opted-out customer gets nothing (their writing
 * again lifts the opt-out); a proactive message during WhatsApp's reach-out
 * lock or new-chat cap is refused at once; otherwise it takes a limiter slot or waits for
 * one. A message that passed once passes again (a retry, a typing pause).
 */
export class SafeSending {
  readonly store: SendSafetyStore;
  private readonly optOuts: OptOuts;

  constructor(
    private readonly deps: { config: Readonly<Config>; redis: Redis; keys: RedisKeys; instanceKey: string; log: Logger },
  ) {
    this.store = new SendSafetyStore(deps.redis, deps.keys, deps.instanceKey);
    this.optOuts = new OptOuts(deps.redis, deps.keys);
  }

  /** Every address of the message's chat Ponte knows. */
  private jids(j: OutboundJob, jid: string): string[] {
    const out = new Set([jid]);
    for (const v of [j.contact.sourceId, j.contact.identifier]) if (v && JID.test(v)) out.add(v);
    return [...out];
  }

  async decide(j: OutboundJob, jid: string, nowMs = Date.now()): Promise<SafetyDecision> {
    const { store } = this;
    // A group is no stranger reached: its members chose to be there.
    if (jid.endsWith('@g.us') || (await store.passed(j.messageId))) return { action: 'go' };
    const jids = this.jids(j, jid);
    if (await this.optOuts.isOptedOut(this.deps.instanceKey, ...jids)) {
      await store.release(j.messageId);
      return { action: 'refuse', reason: OPTED_OUT_REASON };
    }
    const last = await store.lastIncoming(jids);
    if (last !== undefined && nowMs - last < REPLY_WINDOW_MS) {
      await store.markPassed(j.messageId);
      return { action: 'go' };
    }
    const restricted = await store.restriction(nowMs);
    if (restricted) {
      await store.release(j.messageId);
      return { action: 'refuse', reason: restrictionReason(restricted.kind, restricted.untilMs) };
    }
    const s = this.deps.config.safety;
    const spacing = s.spacingMs.max > s.spacingMs.min ? randomInt(s.spacingMs.min, s.spacingMs.max + 1) : s.spacingMs.min;
    const waitMs = await store.take(jid, `${j.messageId}:${nowMs}`, { sendsPerMinute: s.sendsPerMinute, newChatsPerHour: s.newChatsPerHour }, spacing, nowMs);
    if (waitMs === 0) {
      await store.markPassed(j.messageId);
      await store.release(j.messageId);
      return { action: 'go' };
    }
    await store.hold(j.messageId);
    // A few ms more, so the conversations waiting for one slot do not all wake at once.
    return { action: 'hold', waitMs: waitMs + randomInt(0, 250) };
  }

  /**
   * With OUTBOUND_TYPING: whether to show "typing…" now (first time for the
   * message) and how long the send still waits for it.
   */
  async typing(j: OutboundJob, nowMs = Date.now()): Promise<{ compose: boolean; waitMs: number }> {
    if (!this.deps.config.safety.typing) return { compose: false, waitMs: 0 };
    const started = await this.store.typingStarted(j.messageId, nowMs);
    return { compose: started === nowMs, waitMs: Math.max(0, started + typingMs(j.content) - nowMs) };
  }

  /** WhatsApp restricts the number (a refused send, an announced lock or cap), until `untilMs` when it says. True when the restriction is new (operators are told once). */
  lock(kind: SendRestriction, untilMs: number | undefined, nowMs = Date.now()): Promise<boolean> {
    return this.store.lock(kind, untilMs ?? nowMs + this.deps.config.safety.lockDefaultMs, untilMs !== undefined, nowMs);
  }
}
