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
