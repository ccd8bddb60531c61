/** Hands a socket's history sets (`messaging-history.set`) over to the instance's history import. */
import type { BaileysEventMap, Contact, WAMessage } from '@whiskeysockets/baileys';
import { coerceError } from '../lib/errors.js';
import type { HistoryMessage, OldestMessage } from '../inbound/history-store.js';
import type { Logger } from '../observability/logger.js';
import { normalizeMessage } from '../whatsapp/normalize.js';
import { withPhoneNumber } from './lid-number.js';

type HistorySet = BaileysEventMap['messaging-history.set'];

/** The part of a socket's event emitter this binding listens on. */
export interface HistorySource {
  on(event: 'messaging-history.set', listener: (arg: HistorySet) => void): void;
  off(event: 'messaging-history.set', listener: (arg: HistorySet) => void): void;
}

export interface SessionHistoryDeps {
  /** Keeps the set's messages and imports what is due (`HistoryImport.receive`). */
  accept(messages: HistoryMessage[], oldest: Map<string, OldestMessage>): Promise<void>;
  /** Keeps the set's contacts and the names WhatsApp knows for them (before the messages, so new contacts take those names). */
  contacts?(list: readonly Contact[]): Promise<void>;
  log: Logger;
  /** Group messages are dropped for this instance (GROUPS_IGNORED). */
  ignoreGroups?: boolean;
  /** The phone-number JID WhatsApp gave this number for a LID (history keys never carry the alternate address). */
  pnForLid?(lidJid: string): Promise<string | undefined>;
}

/**
 * Feeds a WhatsApp session's history sets into the history import, one set
 * after the other: each message normalized as a live one is (what is not a
 * conversation message is left out), given the phone number WhatsApp knows
 * for a LID, and numbered in its chat's order. The oldest message of each
 * chat is passed along: a request for older history starts there.
 */
export class SessionHistory {
  private chain: Promise<void> = Promise.resolve();
  private readonly listener = (arg: HistorySet): void => {
    const { messages, contacts } = arg;
    this.chain = this.chain
      .then(async () => {
        if (contacts.length > 0 && this.deps.contacts) await this.deps.contacts(contacts);
        await this.handle(messages, arg.syncType ?? undefined);
      })
      .catch((err: unknown) => this.deps.log.error({ err: coerceError(err) }, 'history set not kept'));
  };

  constructor(
    private readonly source: HistorySource,
    private readonly deps: SessionHistoryDeps,
  ) {
    source.on('messaging-history.set', this.listener);
  }

  private async handle(raw: readonly WAMessage[], syncType: number | undefined): Promise<void> {
    const { messages, oldest } = await historyMessages(raw, this.deps);
    this.deps.log.info({ syncType, received: raw.length, messages: messages.length, chats: oldest.size }, 'history set received');
    if (messages.length > 0 || oldest.size > 0) await this.deps.accept(messages, oldest);
  }

  /** Stops listening; resolves once the sets already received are kept. */
  async stop(): Promise<void> {
    this.source.off('messaging-history.set', this.listener);
    await this.chain;
  }

  /** Resolves once every set received so far is kept (for the sandbox and tests). */
  idle(): Promise<void> {
    return this.chain;
  }
}

/**
 * The messages of a history set as the import keeps them. WhatsApp sends
 * each chat newest first, so within one chat and one second a message later
 * in the set is older: the order key (`timestampS * 1000 + n`) puts it first.
 */
export async function historyMessages(raw: readonly WAMessage[], deps: Pick<SessionHistoryDeps, 'ignoreGroups' | 'pnForLid' | 'log'>): Promise<{ messages: HistoryMessage[]; oldest: Map<string, OldestMessage> }> {
  const messages: HistoryMessage[] = [];
  const oldest = new Map<string, OldestMessage>();
  const sameSecond = new Map<string, number>();
  for (let i = raw.length - 1; i >= 0; i--) {
    const m = raw[i]!;
    const result = normalizeMessage(m, 'append');
    if (!result.ok) continue;
    if (deps.ignoreGroups && result.message.chatKind === 'group') continue;
    const message = await withPhoneNumber(result.message, deps, deps.log);
    const slot = `${message.chatId}|${message.timestampS}`;
    const n = sameSecond.get(slot) ?? 0;
    sameSecond.set(slot, n + 1);
    messages.push({ message, order: message.timestampS * 1000 + Math.min(n, 999) });
    const jid = m.key.remoteJid!;
    const known = oldest.get(jid);
    // Walking from the set's end, the first seen of a second is its oldest.
    if (!known || message.timestampS < known.timestampS) {
      oldest.set(jid, {
        key: { remoteJid: jid, id: message.waId, fromMe: message.fromMe, ...(m.key.participant ? { participant: m.key.participant } : {}) },
        timestampS: message.timestampS,
      });
    }
  }
  return { messages, oldest };
}
