/** Links under way, kept in Redis: which instances are showing QR codes and the conversation each link is announced in. */
import type { Redis } from 'ioredis';
import { parseJson } from '../../lib/parse.js';
import type { InstanceRecord } from '../../model/instance.js';
import type { RedisKeys } from '../../redis/keys.js';

/** The conversation a link is announced in (the command's, as the registry keeps it). */
export type LinkTarget = NonNullable<InstanceRecord['notify']>;

/** Baileys shows the first QR of a pairing attempt for 60 s, each next one for 20 s (`reference/baileys.md` §1.5). */
export const BAILEYS_FIRST_QR_MS = 60_000;

/** After a scan the socket restarts (515) and logs in before the link opens: a few seconds, bounded generously. */
export const LINK_GRACE_MS = 60_000;

/**
 * An instance that showed a QR is a link under way: when it opens next, the
 * link is news and is announced once; any other open (a reconnect) is not.
 * Kept in Redis rather than in the primary's memory, so a link that
 * completes across a primary restart (the scan just before it, the open
 * just after, from the saved credentials and without a new QR) is still
 * announced. Each QR renews the entry for one QR's lifetime plus
 * {@link LINK_GRACE_MS}, so an abandoned pairing leaves nothing behind.
 */
export class PendingLinks {
  constructor(private readonly deps: { redis: Redis; keys: RedisKeys; ttlMs: number }) {}

  /** The instance showed a QR: its link, when it comes, is announced in `target`. */
  async mark(instanceKey: string, target: LinkTarget): Promise<void> {
    await this.deps.redis.set(this.deps.keys.pendingLink(instanceKey), JSON.stringify(target), 'PX', this.deps.ttlMs);
  }

  /** The instance opened: where to announce the link, once (whoever asks next gets nothing), or undefined when no link was under way. */
  async take(instanceKey: string): Promise<LinkTarget | undefined> {
    const raw = await this.deps.redis.getdel(this.deps.keys.pendingLink(instanceKey));
    if (raw === null) return undefined;
    const v = parseJson(raw) as Partial<LinkTarget> | undefined;
    if (!v || typeof v.accountId !== 'number' || typeof v.conversationId !== 'number') return undefined;
    return { accountId: v.accountId, conversationId: v.conversationId, ...(v.private === true ? { private: true } : {}) };
  }
}

/** One QR's lifetime on the configured driver, plus the grace for the link to open after a scan. */
export function pendingLinkTtlMs(whatsapp: { driver: 'baileys' | 'sandbox'; sandboxQrIntervalMs: number }): number {
  return (whatsapp.driver === 'sandbox' ? whatsapp.sandboxQrIntervalMs : BAILEYS_FIRST_QR_MS) + LINK_GRACE_MS;
}
