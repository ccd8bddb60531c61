import type { ChatwootClientLike, CreateMessageBody, CwMessage } from '../chatwoot/types.js';
import { ChatwootNotFoundError } from '../chatwoot/errors.js';
import type { InboundEvent, InboundMessage } from '../model/inbound.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../queue/keys.js';
import type { Redis } from 'ioredis';
import { ConversationPacer } from './conversation-pacer.js';
import type { ContactResolver, ChatTarget } from './contact-resolver.js';
import type { DeliveryOutcome } from './inbound-consumer.js';
import { PacedError } from './relay-errors.js';

export interface RelayDeps {
  client: ChatwootClientLike;
  resolver: ContactResolver;
  redis: Redis;
  keys: RedisKeys;
  accountId: number;
  instanceKey: string;
  log: Logger;
  pacer?: ConversationPacer;
}

/** The `source_id` Ponte gives every message it creates: how a lost create is found again. */
export function waSourceId(waId: string): string {
  return `WAID:${waId}`;
}

/**
 * Delivers one inbound event to Chatwoot: resolve the chat's conversation
 * (cached: no call), then one message create. Exactly once: the WhatsApp id
 * is marked in flight before the create, and when a mark is found (the answer
 * was lost, or the process died), the conversation's latest messages are
 * searched for its `WAID:` source id before anything is sent again
 * (DESIGN.md, Decisions 4).
 */
export class Relay {
  private readonly pacer: ConversationPacer;

  constructor(private readonly deps: RelayDeps) {
    this.pacer = deps.pacer ?? new ConversationPacer();
  }

  readonly deliver = async (event: InboundEvent): Promise<DeliveryOutcome> => {
    const { message } = event;
    const chatId = message.chatId;
    let target = await this.deps.resolver.resolve(chatId, message);
    try {
      return await this.deliverTo(target, event);
    } catch (err) {
      // The conversation (or its contact) was deleted in Chatwoot: the cache
      // is only a cache, so drop it and resolve once more.
      if (!(err instanceof ChatwootNotFoundError)) throw err;
      this.deps.log.warn({ conversationId: target.conversationId }, 'conversation gone in Chatwoot: resolving again');
      await this.deps.resolver.forget(chatId);
      this.pacer.forget(target.conversationId);
      target = await this.deps.resolver.resolve(chatId, message);
      return this.deliverTo(target, event);
    }
  };

  private async deliverTo(target: ChatTarget, event: InboundEvent): Promise<DeliveryOutcome> {
    const { message } = event;
    const { client, accountId, resolver } = this.deps;
    if (target.inflight === message.waId) {
      const existing = await this.findExisting(target, message.waId);
      if (existing) {
        await resolver.recordCreated(message.chatId, existing.id);
        return { kind: 'delivered', conversationId: target.conversationId, messageId: existing.id };
      }
    }
    const waitMs = this.pacer.reserve(target.conversationId);
    if (waitMs > 0) throw new PacedError(target.conversationId, waitMs);
    const body = await this.messageBody(message);
    await resolver.markInflight(message.chatId, message.waId);
    const created = await client.createMessage(accountId, target.conversationId, body);
    await resolver.recordCreated(message.chatId, created.id);
    return { kind: 'delivered', conversationId: target.conversationId, messageId: created.id };
  }

  /** Looks for a message with this WhatsApp id among the conversation's latest messages. */
  private async findExisting(target: ChatTarget, waId: string): Promise<CwMessage | undefined> {
    const cursor = target.lastMessageId !== undefined ? { after: target.lastMessageId } : undefined;
    const messages = await this.deps.client.listMessages(this.deps.accountId, target.conversationId, cursor);
    const sourceId = waSourceId(waId);
    return messages.find((m) => m.source_id === sourceId);
  }

  private async messageBody(message: InboundMessage): Promise<CreateMessageBody> {
    const attributes: Record<string, unknown> = {};
    if (message.fromMe) attributes.external_echo = true;
    if (message.quotedWaId) {
      const mapped = await this.deps.redis.get(this.deps.keys.waToCw(this.deps.instanceKey, message.quotedWaId));
      if (mapped) attributes.in_reply_to = Number(mapped.split(':')[1]);
      else attributes.in_reply_to_external_id = waSourceId(message.quotedWaId);
    }
    let content: string;
    if (message.content.kind === 'text') {
      content = message.content.text;
    } else {
      attributes.is_unsupported = true;
      content = message.content.text ?? `[${message.content.waType}]`;
    }
    if (message.chatKind === 'group' && message.participant) content = `${participantLabel(message)}\n${content}`;
    return {
      content,
      message_type: message.fromMe ? 'outgoing' : 'incoming',
      private: false,
      source_id: waSourceId(message.waId),
      content_attributes: attributes,
      external_created_at: message.timestampS,
    };
  }
}

function participantLabel(message: InboundMessage): string {
  const p = message.participant;
  if (!p) return '';
  const number = p.pnJid ? `+${p.pnJid.split('@')[0]}` : undefined;
  const name = p.pushName?.trim();
  if (name && number) return `*${name}* (${number}):`;
  return `*${name ?? number ?? p.lidJid?.split('@')[0] ?? 'unknown'}*:`;
}

export type { ChatTarget };
