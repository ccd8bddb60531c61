/** Decides what the inbound consumer does about each kind of failed Chatwoot delivery. */
import { ChatwootConversationLimitError, ChatwootError, ChatwootRateLimitedError } from '../chatwoot/errors.js';
import { coerceError } from '../lib/errors.js';
import type { FailureClass } from './classify.js';
import { PacedError, WhatsAppUnavailableError } from './relay-errors.js';

/** How long a conversation waits after Chatwoot's own "Too many messages" (its window is one minute). */
const TOO_MANY_MESSAGES_DELAY_MS = 60_000;

/**
 * Maps what a delivery threw onto what the inbound consumer does
 * (DESIGN.md, Decisions 3): Chatwoot being unreachable, slow, failing (5xx)
 * or losing an answer is an outage, never the message's fault; a 429 backs
 * off; a non-retryable 4xx parks the message; anything else is retried as a
 * failure of that message.
 */
export function classifyChatwootFailure(thrown: unknown): FailureClass {
  if (thrown instanceof PacedError || thrown instanceof WhatsAppUnavailableError) {
    return { kind: 'paced', code: thrown.code, message: thrown.message, delayMs: thrown.delayMs };
  }
  if (thrown instanceof ChatwootError) {
    const base = { code: thrown.code, message: thrown.message };
    if (thrown instanceof ChatwootConversationLimitError) {
      return { kind: 'paced', ...base, delayMs: TOO_MANY_MESSAGES_DELAY_MS };
    }
    switch (thrown.kind) {
      case 'retryable':
      case 'lost_response':
        return { kind: 'outage', ...base };
      case 'rate_limited':
        return {
          kind: 'rate_limited',
          ...base,
          ...(thrown instanceof ChatwootRateLimitedError && thrown.retryAfterMs !== undefined ? { retryAfterMs: thrown.retryAfterMs } : {}),
        };
      case 'permanent':
        return { kind: 'permanent', ...base };
    }
  }
  const e = coerceError(thrown);
  const code = (e as { code?: unknown }).code;
  return { kind: 'retry', code: typeof code === 'string' ? code : 'UNEXPECTED', message: e.message };
}
