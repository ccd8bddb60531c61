/** The one table from error codes to HTTP statuses, and the Express handler that answers with it. */
import type { NextFunction, Request, Response } from 'express';
import { type ControlCode, isControlCode } from '../../cluster/ipc.js';

/** Every code a control call can fail with, and the status an operator sees for it. */
const STATUS: Record<ControlCode, number> = {
  bad_request: 400,
  INVALID_INSTANCE_KEY: 400,
  not_found: 404,
  UNKNOWN_POLL: 404,
  SANDBOX_UNKNOWN_MESSAGE: 404,
  no_qr: 404,
  not_running: 409,
  not_connected: 409,
  NOT_AWAITING_SCAN: 409,
  SANDBOX_STATE: 409,
  not_configured: 409,
  opted_out: 409,
  not_on_whatsapp: 422,
  attachment_refused: 422,
  internal: 500,
  chatwoot_refused: 502,
  chatwoot_unavailable: 503,
  worker_unavailable: 503,
  worker_gone: 503,
  timeout: 504,
};

/** Answers errors with a code of the control contract (and body-parser's 4xx) as JSON with a reason; the rest go on to the 500 handler. */
export function controlErrorHandler(err: unknown, _req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) return next(err);
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && isControlCode(code)) {
    res.status(STATUS[code]).json({ error: code, message: err.message });
    return;
  }
  // body-parser's errors (malformed JSON, too large) carry their own 4xx status.
  const status = (err as { status?: unknown } | null)?.status;
  if (err instanceof Error && typeof status === 'number' && status >= 400 && status < 500) {
    res.status(status).json({ error: 'bad_request', message: err.message });
    return;
  }
  next(err);
}
