/** A customer's opt-out keyword (OPT_OUT_KEYWORDS): the label in Chatwoot, one answer on WhatsApp, and its end when they write again. */
import type { Redis } from 'ioredis';
import type { ChatwootClientLike } from '../chatwoot/types.js';
import { type Config, normalizeKeyword } from '../config/schema.js';
import { coerceError } from '../lib/errors.js';
import type { InboundMessage } from '../model/inbound.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';
import { OptOuts } from '../redis/send-safety.js';
import type { WaSocket } from '../whatsapp/socket.js';

/** The Chatwoot label an opted-out contact carries. */
export const OPT_OUT_LABEL = 'whatsapp-opt-out';

export interface OptOutDeps {
  config: Readonly<Config>;
  redis: Redis;
  keys: RedisKeys;
  instanceKey: string;
  accountId: number;
  chatwoot: ChatwootClientLike;
  /** The open socket, when there is one (the answer goes on it). */
  socket(): WaSocket | undefined;
  log: Logger;
}

/** The addresses of a direct chat Ponte keeps records under. */
export function chatJids(message: InboundMessage): string[] {
  const out = new Set([message.chatId]);
  if (message.remoteJid) out.add(message.remoteJid.replace(/:\d+@/, '@'));
  return [...out];
}

/**
 * Runs after a customer's message reached Chatwoot (it is relayed like any
 * other). A whole message that is one of the keywords (trimmed, case and
 * accents ignored) opts the customer out: recorded per chat (proactive
 * sends to them are refused), the contact labelled `whatsapp-opt-out`, and
 * OPT_OUT_REPLY sent once (a repeated keyword is not answered again). Any
 * other message from them ends the opt-out and removes the label.
 */
export class OptOutHandler {
  private readonly optOuts: OptOuts;

  constructor(private readonly deps: OptOutDeps) {
    this.optOuts = new OptOuts(deps.redis, deps.keys);
  }

  isKeyword(message: InboundMessage): boolean {
    if (message.content.kind !== 'text') return false;
    return this.deps.config.safety.optOutKeywords.includes(normalizeKeyword(message.content.text));
  }

  async onDelivered(message: InboundMessage, conversationId: number): Promise<void> {
    if (message.fromMe || message.chatKind !== 'direct') return;
    const jids = chatJids(message);
    const { instanceKey } = this.deps;
    if (this.isKeyword(message)) {
      if (!(await this.optOuts.optOut(instanceKey, jids))) return;
      this.deps.log.info({ conversationId }, 'a customer opted out');
      await this.label(conversationId, true);
      await this.answer(message);
      return;
    }
    if (await this.optOuts.optIn(instanceKey, jids)) {
      this.deps.log.info({ conversationId }, 'an opted-out customer wrote again: the opt-out ends');
      await this.label(conversationId, false);
    }
  }

  /** Adds or removes the label (Chatwoot replaces the whole list: read, then write). A failure is logged; the opt-out stands in Ponte. */
  private async label(conversationId: number, on: boolean): Promise<void> {
    const { chatwoot, accountId } = this.deps;
    try {
      const contactId = (await chatwoot.getConversation(accountId, conversationId)).meta?.sender?.id;
      if (!contactId) return;
      const labels = await chatwoot.contactLabels(accountId, contactId);
      const next = on ? [...new Set([...labels, OPT_OUT_LABEL])] : labels.filter((l) => l !== OPT_OUT_LABEL);
      if (next.length !== labels.length) await chatwoot.setContactLabels(accountId, contactId, next);
    } catch (err) {
      this.deps.log.warn({ err: coerceError(err), conversationId }, 'could not change the opt-out label');
    }
  }

  /** OPT_OUT_REPLY on WhatsApp; its echo reaches Chatwoot as a message from the number, so agents see it. */
  private async answer(message: InboundMessage): Promise<void> {
    const text = this.deps.config.safety.optOutReply;
    const socket = this.deps.socket();
    if (!text || !socket) return;
    try {
      await socket.sendMessage(message.remoteJid ?? message.chatId, { text });
    } catch (err) {
      this.deps.log.warn({ err: coerceError(err) }, 'could not answer an opt-out');
    }
  }
}
