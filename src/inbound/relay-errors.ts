/** Errors of the inbound relay that delay a chat without using up its message's attempts. */
import { AppError } from '../lib/errors.js';

/** The conversation reached Chatwoot's per-minute message limit: this chat waits `delayMs`. */
export class PacedError extends AppError {
  readonly code = 'CONVERSATION_PACED';

  constructor(
    readonly conversationId: number,
    readonly delayMs: number,
  ) {
    super(`conversation ${conversationId} is at its message rate limit; waiting ${delayMs} ms`);
  }
}

/**
 * A media message cannot be downloaded now because the instance's WhatsApp
 * connection is down: the chat waits `delayMs` (it is not the message's
 * fault, so no attempt is used up).
 */
export class WhatsAppUnavailableError extends AppError {
  readonly code = 'WHATSAPP_UNAVAILABLE';

  constructor(readonly delayMs = 5000) {
    super('WhatsApp is not connected; media download waits for it');
  }
}
