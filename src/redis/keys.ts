/**
 * Every Redis key Ponte writes, built in one place under the configured prefix.
 *
 * The prefix is `REDIS_PREFIX` (default `ponte:`), so tests and several
 * deployments can share one Redis. BullMQ queues use `<prefix>q` as their
 * own prefix.
 */
/**
 * How long Ponte keeps what it records per message (id mappings, delivery
 * records, per-chat caches): 30 days, refreshed by use. Queues and their
 * chat lists drain and need none.
 */
export const RETENTION_S = 30 * 24 * 3600;

/** Longest lists Ponte keeps that nothing drains (parked messages, the sandbox's outbox): the newest entries stay. */
export const LIST_CAP = 10_000;

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

  /** The instance's lease epoch: incremented at every acquisition, so a later holder always carries a larger one. */
  leaseEpoch(instanceKey: string): string {
    return `${this.prefix}lease-epoch:${instanceKey}`;
  }

  /** Which host runs the instance (`<hostId>/<slot>`), with a TTL its host renews: the placement of the instance among hosts. */
  placement(instanceKey: string): string {
    return `${this.prefix}placement:${instanceKey}`;
  }

  /** One host's heartbeat (its snapshot as JSON), expiring when the host stops renewing it. */
  host(hostId: string): string {
    return `${this.prefix}host:${hostId}`;
  }

  /** Every host ever seen on this prefix → when it was last seen (ms): a down host stays listed as down. */
  get hosts(): string {
    return `${this.prefix}hosts`;
  }

  /** Control calls waiting for one host (a list of JSON requests). */
  hostCalls(hostId: string): string {
    return `${this.prefix}rpc:${hostId}`;
  }

  /** Answers to one host's control calls. */
  hostAnswers(hostId: string): string {
    return `${this.prefix}rpc-answers:${hostId}`;
  }

  /** The pub/sub channel of instance events (QR, open, alert, state) and placement nudges, shared by every host. */
  get hostEvents(): string {
    return `${this.prefix}events`;
  }

  /** An instance's WhatsApp credentials (`AUTH_STORE=redis`): BufferJSON text, sealed when `AUTH_STORE_KEY` is set. */
  authCreds(instanceKey: string): string {
    return `${this.prefix}auth:${instanceKey}:creds`;
  }

  /** An instance's Signal keys (`AUTH_STORE=redis`): one hash, field `<type>/<id>`. */
  authKeys(instanceKey: string): string {
    return `${this.prefix}auth:${instanceKey}:keys`;
  }

  /** SCAN pattern of every instance's credentials key. */
  get authCredsPattern(): string {
    return `${this.prefix}auth:*:creds`;
  }

  /** The last signing secret read for an instance's inbox (so a restart during a Chatwoot outage still verifies). */
  inboxSecret(instanceKey: string): string {
    return `${this.prefix}secret:${instanceKey}`;
  }

  /** An instance showing QR codes for a link the operator asked for: the conversation to announce the link in (JSON), with a TTL of the QR's lifetime. */
  pendingLink(instanceKey: string): string {
    return `${this.prefix}link:${instanceKey}`;
  }

  /** The inbox an `erga new` (or admin) request created, by the request's reference: a repeat of the request reuses it. */
  createdInbox(ref: string): string {
    return `${this.prefix}newinbox:${ref}`;
  }

  /** The instance registry: one hash, instance key → JSON record. */
  get instances(): string {
    return `${this.prefix}instances`;
  }

  /** The sandbox driver's outbox of one instance (every message Ponte sent), a list. */
  sandboxOutbox(instanceKey: string): string {
    return `${this.prefix}sandbox:${instanceKey}:outbox`;
  }

  /** The sandbox's connection log of one instance: every socket's open, sends and close, with its host and process. */
  sandboxSockets(instanceKey: string): string {
    return `${this.prefix}sandbox:${instanceKey}:sockets`;
  }

  /** Per-instance outbound keys; the scripts append `conv:<id>`, `sched:<id>`, `seen:<event id>`, `pending`, `attempts`. */
  outbound(instanceKey: string): string {
    return `${this.prefix}out:${instanceKey}:`;
  }

  /** An agent message's parts sent on WhatsApp: hash part index → WhatsApp id. */
  outParts(instanceKey: string, cwMessageId: number): string {
    return `${this.prefix}out:${instanceKey}:msg:${cwMessageId}`;
  }

  /** The WhatsApp id chosen for each part before it is sent (reused by a repeated send): hash part index → id. */
  outIntents(instanceKey: string, cwMessageId: number): string {
    return `${this.prefix}out:${instanceKey}:intent:${cwMessageId}`;
  }

  /** The receipt status of each part of an agent message: hash part index → WhatsApp status (3 delivered, 4 read). */
  outStatus(instanceKey: string, cwMessageId: number): string {
    return `${this.prefix}out:${instanceKey}:st:${cwMessageId}`;
  }

  /** An agent message's state: accepted by WhatsApp, failed, wanted and reported status, conversation. */
  outState(instanceKey: string, cwMessageId: number): string {
    return `${this.prefix}out:${instanceKey}:state:${cwMessageId}`;
  }

  /** Messages whose wanted status Chatwoot has not confirmed yet: a set of Chatwoot message ids. */
  outUnreported(instanceKey: string): string {
    return `${this.prefix}out:${instanceKey}:unreported`;
  }

  /** What was sent as a WhatsApp id (a `proto.Message`, base64), for recipients' retry receipts. */
  outSent(instanceKey: string, waId: string): string {
    return `${this.prefix}out:${instanceKey}:sent:${waId}`;
  }

  /** WhatsApp id of a sent part → `<conversationId>:<messageId>:<part>:<jid>`. */
  outWa(instanceKey: string, waId: string): string {
    return `${this.prefix}out:${instanceKey}:wa:${waId}`;
  }

  /** The customer's messages in a conversation not yet marked read on WhatsApp: a list of message keys (JSON). */
  outUnread(instanceKey: string, conversationId: number): string {
    return `${this.prefix}out:${instanceKey}:unread:${conversationId}`;
  }

  /** The WhatsApp JID of a conversation Ponte did not create (resolved from the contact's number). */
  outJid(instanceKey: string, conversationId: number): string {
    return `${this.prefix}out:${instanceKey}:jid:${conversationId}`;
  }

  /** The sandbox driver's record of messages Ponte marked read, a list of WhatsApp ids. */
  sandboxRead(instanceKey: string): string {
    return `${this.prefix}sandbox:${instanceKey}:read`;
  }

  /**
   * Per-instance history-import keys: the history sets kept until imported
   * (message bodies, their times, the oldest message of each chat) and the
   * import's state and plan (one sorted set per chat).
   */
  history(instanceKey: string): string {
    return `${this.prefix}hist:${instanceKey}:`;
  }

  /**
   * Per-instance contact-name keys: the contacts WhatsApp knows for the
   * number (`known`), the name Ponte last wrote on each Chatwoot contact
   * (`written`), and the latest contacts run (`run`).
   */
  contactNames(instanceKey: string): string {
    return `${this.prefix}names:${instanceKey}:`;
  }

  /** A relayed poll's options and secret, to read its votes. */
  poll(instanceKey: string, pollWaId: string): string {
    return `${this.prefix}poll:${instanceKey}:${pollWaId}`;
  }

  /** The last bot question with options of a conversation, waiting for the customer's answer (a hash, with a TTL). */
  botQuestion(instanceKey: string, conversationId: number): string {
    return `${this.prefix}botq:${instanceKey}:${conversationId}`;
  }

  /** What a send API request with this reference created (a hash: conversation, message, the queued job), kept a week. */
  sendReference(instanceKey: string, reference: string): string {
    return `${this.prefix}sendref:${instanceKey}:${reference}`;
  }

  lock(name: string): string {
    return `${this.prefix}lock:${name}`;
  }
}

/**
 * The queue of one worker process's inbound chats, for all its instances
 * (`hostId` and `slot`: the worker's host and slot, so several hosts on one
 * prefix never share a queue). BullMQ queue names may not contain ':'.
 */
export function inboundQueueName(hostId: string, slot: number): string {
  return `inbound.${hostId}.w${slot}`;
}

/** The queue of one worker process's outbound conversations (agent replies to send), for all its instances. */
export function outboundQueueName(hostId: string, slot: number): string {
  return `outbound.${hostId}.w${slot}`;
}

/** The outbound queue one instance had before queues were per worker process (read once, for jobs that carried a message). */
export function legacyOutboundQueueName(instanceKey: string): string {
  return `outbound.${instanceKey}`;
}

/** The BullMQ job id of a conversation's outbound drain job for one generation of its flag. */
export function conversationJobId(instanceKey: string, conversationId: number, generation: string): string {
  return `${instanceKey}.conv.${conversationId}.${generation}`;
}

/**
 * The BullMQ job id of a chat's drain job for one generation of its flag
 * (custom ids may not contain ':' nor be integers; instance keys have none).
 */
export function chatJobId(instanceKey: string, chatId: string, generation: string): string {
  return `${instanceKey}.chat.${chatId.replaceAll(':', '_')}.${generation}`;
}
