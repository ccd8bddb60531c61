/**
 * The base class of every error Ponte raises, and helpers to coerce and serialize errors.
 *
 * Base of every error Ponte raises on purpose. Each subclass carries a stable
 * `code`: callers branch on `instanceof` or `code`, never on `message`.
 */
export abstract class AppError extends Error {
  abstract readonly code: string;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Turns anything thrown into an `Error`, keeping the original as `cause`. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  const message = typeof thrown === 'string' ? thrown : safeStringify(thrown);
  return new Error(message, { cause: thrown });
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch (err) {
    // Circular or BigInt-holding values cannot be JSON: their string form is the best message left.
    if (err instanceof TypeError) return String(value);
    throw err;
  }
}

/** A plain object for IPC and logs: the name, code, message and the chain of causes. */
export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  cause?: SerializedError;
}

export function serializeError(error: unknown, depth = 0): SerializedError {
  const e = coerceError(error);
  const code = (e as { code?: unknown }).code;
  const out: SerializedError = { name: e.name, message: e.message };
  if (typeof code === 'string') out.code = code;
  if (e.cause !== undefined && depth < 4) out.cause = serializeError(e.cause, depth + 1);
  return out;
}
