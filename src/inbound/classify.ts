/**
 * The verdicts a failed inbound delivery can get, and how the consumer carries each out.
 *
 * How the inbound consumer treats a failed delivery. Produced by the relay's
 * classifier from typed Chatwoot errors; the consumer maps it onto BullMQ.
 */
export type FailureClass =
  /** Chatwoot unreachable, timing out, 5xx, or a create whose answer was lost: pause the instance, keep the attempt. */
  | { kind: 'outage'; code: string; message: string }
  /** 429: pause the instance, honouring Retry-After when given. */
  | { kind: 'rate_limited'; code: string; message: string; retryAfterMs?: number }
  /** This conversation is at Chatwoot's per-minute message limit: delay this chat only. */
  | { kind: 'paced'; code: string; message: string; delayMs: number }
  /** Chatwoot refused this message for good (a non-retryable 4xx): park it now. */
  | { kind: 'permanent'; code: string; message: string }
  /** Anything else about this message: retry with backoff, up to the configured attempts. */
  | { kind: 'retry'; code: string; message: string };

export type FailureClassifier = (error: unknown) => FailureClass;
