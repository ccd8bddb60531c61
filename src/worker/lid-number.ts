/** Gives a message that came by LID alone the phone number WhatsApp told this number for that LID. */
import { coerceError } from '../lib/errors.js';
import type { InboundMessage } from '../model/inbound.js';
import type { Logger } from '../observability/logger.js';

/**
 * A message by LID alone from someone WhatsApp has told this number the
 * phone number of: the person gets the number, so they stay one contact and
 * one conversation with their earlier messages. Live messages and history
 * both come this way (history keys never carry the alternate address).
 */
export async function withPhoneNumber(message: InboundMessage, source: { pnForLid?(lidJid: string): Promise<string | undefined> }, log: Logger): Promise<InboundMessage> {
  const person = message.chatKind === 'group' ? message.participant : message.peer;
  if (!person?.lidJid || person.pnJid || !source.pnForLid) return message;
  const pnJid = await source.pnForLid(person.lidJid).catch((err: unknown) => {
    log.debug({ err: coerceError(err), waId: message.waId }, 'no phone number known for a LID');
    return undefined;
  });
  if (!pnJid) return message;
  if (message.chatKind === 'group') return { ...message, participant: { ...person, pnJid } };
  return { ...message, peer: { ...person, pnJid }, chatId: pnJid };
}
