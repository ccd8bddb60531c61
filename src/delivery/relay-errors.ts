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
