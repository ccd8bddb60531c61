/**
 * Every Redis key Ponte writes, built in one place under the configured
 * prefix (`REDIS_PREFIX`, default `ponte:`), so tests and several
 * deployments can share one Redis. BullMQ queues use `<prefix>q` as their
 * own prefix.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** BullMQ's `prefix` option: its keys become `<prefix>q:<queue>:…`. */
  get bullPrefix(): string {
    return `${this.prefix}q`;
  }

  /** Per-instance inbound keys; `chatId` is appended by the scripts. */
  inbound(instanceKey: string): string {
    return `${this.prefix}in:${instanceKey}:`;
  }

  /** WhatsApp message id → `<conversationId>:<messageId>` in Chatwoot. */
  waToCw(instanceKey: string, waId: string): string {
    return `${this.prefix}map:${instanceKey}:wa:${waId}`;
  }

  /** Chatwoot message id → WhatsApp message id. */
  cwToWa(instanceKey: string, cwMessageId: number): string {
    return `${this.prefix}map:${instanceKey}:cw:${cwMessageId}`;
  }

  /** Resolved Chatwoot target of one chat (contact, contact inbox, conversation). */
  chat(instanceKey: string, chatId: string): string {
    return `${this.prefix}chat:${instanceKey}:${chatId}`;
  }

  /** A WhatsApp address (PN or LID JID) → Chatwoot contact id, per account. */
  contactAlias(accountId: number, jid: string): string {
    return `${this.prefix}contact:${accountId}:${jid}`;
  }

  /** Counters of one instance (received, relayed, failed, …). */
  stats(instanceKey: string): string {
    return `${this.prefix}stats:${instanceKey}`;
  }

  /** Which process owns an instance's socket (DESIGN.md, Decisions 6). */
  lease(instanceKey: string): string {
    return `${this.prefix}lease:${instanceKey}`;
  }

  /** The instance registry: one hash, instance key → JSON record. */
  get instances(): string {
    return `${this.prefix}instances`;
  }

  /** The sandbox driver's outbox of one instance (every message Ponte sent), a list. */
  sandboxOutbox(instanceKey: string): string {
    return `${this.prefix}sandbox:${instanceKey}:outbox`;
  }

  lock(name: string): string {
    return `${this.prefix}lock:${name}`;
  }
}

/** BullMQ queue names may not contain ':'; instance keys never do. */
export function inboundQueueName(instanceKey: string): string {
  return `inbound.${instanceKey}`;
}

/** A BullMQ job id for a chat: custom ids may not contain ':' nor be integers. */
export function chatJobId(chatId: string): string {
  return `chat.${chatId.replaceAll(':', '_')}`;
}
