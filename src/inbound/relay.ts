/** Delivers one inbound event to Chatwoot exactly once. */
import { rm } from 'node:fs/promises';
import type { ChatwootClientLike, CwMessage } from '../chatwoot/types.js';
import { ChatwootNotFoundError } from '../chatwoot/errors.js';
import type { InboundEvent, InboundMessage } from '../model/inbound.js';
import { parseRelayed } from '../model/relayed.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';
import type { Redis } from 'ioredis';
import { ConversationPacer } from './conversation-pacer.js';
import type { ContactResolver, ChatTarget } from './contact-resolver.js';
import type { DeliveryOutcome } from './inbound-consumer.js';
import { PacedError } from './relay-errors.js';
import { createBody, type MediaFetcher, type PollRecord, type Rendering, readVote, renderInbound } from './render.js';
import { waSourceId } from '../model/source-id.js';
import { matchTypedAnswer, matchVote } from '../model/bot-question.js';
import { BotQuestions } from '../redis/bot-questions.js';

export interface RelayDeps {
  client: ChatwootClientLike;
  resolver: ContactResolver;
  redis: Redis;
  keys: RedisKeys;
  accountId: number;
  instanceKey: string;
  log: Logger;
  /** Per-conversation pacing, shared with the history import so both together stay under Chatwoot's limit. */
  pacer?: ConversationPacer;
  /** Downloads media through the instance's socket; without it media arrive as their caption with a note. */
  fetchMedia?: MediaFetcher;
  maxMediaBytes?: number;
  /** This number's own JIDs, for polls sent from the phone. */
  ownJids?: () => string[];
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
  private readonly questions: BotQuestions;

  constructor(private readonly deps: RelayDeps) {
    this.pacer = deps.pacer ?? new ConversationPacer();
    this.questions = new BotQuestions(deps.redis, deps.keys, deps.instanceKey);
  }

  /**
   * `chatId` is Ponte's chat id of the event (its chat list), which joins a
   * person's phone number and LID. `cache` is the chat's cache as the
   * consumer read it with the event, which it marked in flight then (when
   * the chat had a cache); without it the relay reads and marks.
   */
  readonly deliver = async (event: InboundEvent, chatId: string = event.message.chatId, cache?: Readonly<Record<string, string>>): Promise<DeliveryOutcome> => {
    const { message } = event;
    const marked = cache !== undefined && Object.keys(cache).length > 0;
    // Ponte's chat id, not the address this message came by: a person who moved to a LID keeps their conversation.
    let target = await this.deps.resolver.resolve(chatId, message, cache);
    // Whether an earlier attempt sent this create: read before this attempt marked it.
    const sentBefore = (cache ? cache.inflight : target.inflight) === message.waId;
    try {
      return await this.deliverTo(target, event, chatId, { sentBefore, marked });
    } catch (err) {
      // The conversation (or its contact) was deleted in Chatwoot: the cache
      // is only a cache, so drop it and resolve once more.
      if (!(err instanceof ChatwootNotFoundError)) throw err;
      this.deps.log.warn({ conversationId: target.conversationId }, 'conversation gone in Chatwoot: resolving again');
      await this.deps.resolver.forget(chatId);
      this.pacer.forget(target.conversationId);
      target = await this.deps.resolver.resolve(chatId, message);
      return this.deliverTo(target, event, chatId, { sentBefore, marked });
    }
  };

  private async deliverTo(target: ChatTarget, event: InboundEvent, chatId: string, inflight: { sentBefore: boolean; marked: boolean }): Promise<DeliveryOutcome> {
    const { message } = event;
    const { client, accountId, resolver } = this.deps;
    if (inflight.sentBefore) {
      const existing = await this.findExisting(target, message.waId);
      if (existing) return { kind: 'delivered', conversationId: target.conversationId, messageId: existing.id };
    }
    const rendering = (await this.botAnswer(message, target.conversationId)) ?? (await this.render(message, chatId));
    if (rendering.kind === 'skip') {
      this.deps.log.info({ waId: message.waId, reason: rendering.reason }, 'inbound act not applied');
      return { kind: 'ignored', reason: rendering.reason };
    }
    if (rendering.kind === 'delete') {
      // Deleted for everyone on WhatsApp by its sender: delete the relayed message in Chatwoot.
      const { conversationId, messageId } = rendering.target;
      await client.deleteMessage(accountId, conversationId, messageId).catch((err: unknown) => {
        if (!(err instanceof ChatwootNotFoundError)) throw err;
      });
      return { kind: 'ignored', reason: 'deleted on WhatsApp; deleted in Chatwoot' };
    }
    const body = createBody(rendering, message);
    const attachment = rendering.attachment;
    try {
      const waitMs = this.pacer.reserve(target.conversationId);
      if (waitMs > 0) throw new PacedError(target.conversationId, waitMs);
      if (!inflight.marked) await resolver.markInflight(chatId, message.waId);
      const created = attachment
        ? await client.createMessageWithAttachments(accountId, target.conversationId, body, [attachment])
        : await client.createMessage(accountId, target.conversationId, body);
      // The consumer's ack records it (with the mapping, in one step): the in-flight mark stays until then.
      return { kind: 'delivered', conversationId: target.conversationId, messageId: created.id };
    } finally {
      // A spooled download is read once; a retry downloads again.
      if (attachment && 'file' in attachment) await rm(attachment.file, { force: true });
    }
  }

  /**
   * What `message` becomes in Chatwoot as a message of Ponte's chat
   * `chatId`: its media downloaded (spooled to a file the caller removes),
   * a poll remembered, an act on another message checked against what Ponte
   * recorded of it. The history import renders through here too.
   */
  readonly render = (message: InboundMessage, chatId: string): Promise<Rendering> =>
    renderInbound(message, {
      maxMediaBytes: this.deps.maxMediaBytes ?? 64 * 1024 * 1024,
      ...(this.deps.fetchMedia ? { fetchMedia: this.deps.fetchMedia } : {}),
      polls: {
        remember: async (pollWaId, poll) => {
          await this.deps.redis.set(this.deps.keys.poll(this.deps.instanceKey, pollWaId), JSON.stringify(poll), 'EX', 90 * 86_400);
        },
        get: (pollWaId) => this.pollRecord(pollWaId),
      },
      ...(this.deps.ownJids ? { ownJids: this.deps.ownJids } : {}),
      chatId,
      relayed: async (waId) => {
        const v = await this.deps.redis.get(this.deps.keys.waToCw(this.deps.instanceKey, waId));
        return v ? parseRelayed(v) : undefined;
      },
    });

  /**
   * The customer's answer to the conversation's bot question, when it is
   * one: the option's number or title typed, or a vote on Ponte's poll of
   * the options. It becomes the option's title, replying to the bot's
   * message, so the bot can route on it; the question is then used up (a
   * retried delivery of the same answer finds it again). Anything else,
   * and any message once the question was answered, goes as it was written.
   */
  private async botAnswer(message: InboundMessage, conversationId: number): Promise<Rendering | undefined> {
    const c = message.content;
    if (message.fromMe || message.chatKind !== 'direct' || (c.kind !== 'text' && c.kind !== 'pollVote')) return undefined;
    const question = await this.questions.get(conversationId);
    if (!question || (question.answeredBy !== undefined && question.answeredBy !== message.waId)) return undefined;
    let chosen: number | undefined;
    if (c.kind === 'text') chosen = matchTypedAnswer(question.options, c.text);
    else if (question.pollWaId !== undefined && c.pollWaId === question.pollWaId) {
      const poll = await this.pollRecord(c.pollWaId);
      // Ponte created the poll: its own JIDs are the creator's, whichever way the vote's key names it.
      const creators = [...new Set([...(poll?.creatorJids ?? []), ...(this.deps.ownJids?.() ?? [])])];
      const votes = poll ? readVote(c, poll, creators) : undefined;
      chosen = votes ? matchVote(question.options, votes) : undefined;
    }
    if (chosen === undefined) return undefined;
    if (!(await this.questions.claim(conversationId, question.messageId, message.waId))) return undefined;
    this.deps.log.debug({ waId: message.waId, botMessageId: question.messageId }, 'answer to a bot question');
    return { kind: 'create', content: question.options[chosen]!.title, attributes: { in_reply_to: question.messageId } };
  }

  private async pollRecord(pollWaId: string): Promise<PollRecord | undefined> {
    const v = await this.deps.redis.get(this.deps.keys.poll(this.deps.instanceKey, pollWaId));
    return v ? (JSON.parse(v) as PollRecord) : undefined;
  }

  /** Looks for a message with this WhatsApp id among the conversation's latest messages. */
  private async findExisting(target: ChatTarget, waId: string): Promise<CwMessage | undefined> {
    const cursor = target.lastMessageId !== undefined ? { after: target.lastMessageId } : undefined;
    const messages = await this.deps.client.listMessages(this.deps.accountId, target.conversationId, cursor);
    const sourceId = waSourceId(waId);
    return messages.find((m) => m.source_id === sourceId);
  }

}

export type { ChatTarget };
