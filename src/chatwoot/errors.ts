/** Failed Chatwoot calls as typed errors, each telling the caller what to do about it. */
import { AppError } from '../lib/errors.js';

/**
 * What a caller should do about a failed Chatwoot call:
 * - `retryable`: Chatwoot was unreachable, slow, failing (5xx) or refused the
 *   token; nothing was applied, or the call is safe to repeat. Try again later.
 * - `rate_limited`: 429. Back off (Chatwoot sends no `Retry-After`; honour one if it comes).
 * - `permanent`: Chatwoot refused this request (4xx). Repeating it changes nothing.
 * - `lost_response`: a create went out and its answer was lost (timeout, broken
 *   connection, 5xx). It may exist: look before sending it again (DESIGN.md, Decisions 4).
 */
export type ChatwootFailureKind = 'retryable' | 'rate_limited' | 'permanent' | 'lost_response';

export interface ChatwootErrorDetails {
  method: string;
  /** The route template, e.g. `/api/v1/accounts/{account_id}/contacts` (never the token, never a body). */
  route: string;
  /** HTTP status when Chatwoot answered. */
  status?: number;
  /** When no answer came: the network failure's code (`ECONNREFUSED`, `ENOTFOUND`, `CERT_HAS_EXPIRED`, `ETIMEDOUT`…). */
  networkCode?: string;
  cause?: unknown;
}

/** Base of every error the Chatwoot client raises. */
export abstract class ChatwootError extends AppError {
  abstract readonly kind: ChatwootFailureKind;
  readonly method: string;
  readonly route: string;
  readonly status: number | undefined;
  readonly networkCode: string | undefined;

  constructor(message: string, details: ChatwootErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.method = details.method;
    this.route = details.route;
    this.status = details.status;
    this.networkCode = details.networkCode;
  }

  /** True when the same call may succeed later (outages and rate limits). */
  get retryable(): boolean {
    return this.kind === 'retryable' || this.kind === 'rate_limited';
  }
}

/** Unreachable, timed out before sending, 5xx on a repeatable call. */
export class ChatwootUnavailableError extends ChatwootError {
  readonly code: string = 'CW_UNAVAILABLE';
  readonly kind = 'retryable' as const;
}

/**
 * 401: the access token is wrong or was revoked. Not the message's fault, so
 * it is retryable: delivery pauses until an operator fixes the token.
 */
export class ChatwootUnauthorizedError extends ChatwootUnavailableError {
  override readonly code: string = 'CW_UNAUTHORIZED';
}

/**
 * 401 "Access to this endpoint is not authorized for bots": the token is an
 * agent bot's, which Chatwoot refuses on every route but a few conversation
 * and message ones (`AccessTokenAuthHelper::BOT_ACCESSIBLE_ENDPOINTS`).
 */
export class ChatwootBotTokenError extends ChatwootUnauthorizedError {
  override readonly code = 'CW_BOT_TOKEN';
}

/** 429. */
export class ChatwootRateLimitedError extends ChatwootError {
  readonly code = 'CW_RATE_LIMITED';
  readonly kind = 'rate_limited' as const;
  /** From `Retry-After`, when Chatwoot (or a proxy) sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, details: ChatwootErrorDetails & { retryAfterMs?: number }) {
    super(message, details);
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** A 4xx other than 401/404/422/429. */
export class ChatwootRejectedError extends ChatwootError {
  readonly code: string = 'CW_REJECTED';
  readonly kind = 'permanent' as const;
}

/** 404: the resource does not exist (deleted, or a stale cache entry). */
export class ChatwootNotFoundError extends ChatwootRejectedError {
  override readonly code = 'CW_NOT_FOUND';
}

/** 422: validation failed; `attributes` names the offending fields when Chatwoot says. */
export class ChatwootUnprocessableError extends ChatwootRejectedError {
  override readonly code: string = 'CW_UNPROCESSABLE';
  readonly attributes: readonly string[];

  constructor(message: string, details: ChatwootErrorDetails & { attributes?: readonly string[] }) {
    super(message, details);
    this.attributes = details.attributes ?? [];
  }
}

/** 422 "Too many messages": the conversation reached Chatwoot's per-minute message limit. */
export class ChatwootConversationLimitError extends ChatwootUnprocessableError {
  override readonly code = 'CW_CONVERSATION_LIMIT';
}

/** A create whose answer was lost after the request went out. */
export class ChatwootLostResponseError extends ChatwootError {
  readonly code = 'CW_LOST_RESPONSE';
  readonly kind = 'lost_response' as const;
}
