/** Authentication of Chatwoot's webhooks: Ponte's URL token first, then Chatwoot's HMAC signature on the raw body. */
import { createHmac } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { safeEqual } from '../../lib/safe-equal.js';

export type WebhookAuthResult = { ok: true } | { ok: false; reason: string };

/**
 * Every webhook carries `WEBHOOK_SECRET` (query `token` or header
 * `x-ponte-token`). Checked before the body is read, so a stranger cannot
 * make Ponte read and buffer megabytes (DESIGN.md, Decisions 16).
 */
export function webhookToken(secret: string, onRefused: (req: Request, reason: string) => void) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const queryToken = typeof req.query.token === 'string' ? req.query.token : undefined;
    const token = queryToken ?? req.get('x-ponte-token');
    const reason = !token ? 'missing token: add ?token=<WEBHOOK_SECRET> to the webhook URL' : !safeEqual(token, secret) ? 'wrong token' : undefined;
    if (reason === undefined) return next();
    onRefused(req, reason);
    res.status(401).json({ error: 'unauthorized', message: reason });
  };
}

/** Whether the request carries Chatwoot's signature headers at all. */
export function isSigned(req: Request): boolean {
  return req.get('x-chatwoot-signature') !== undefined || req.get('x-chatwoot-timestamp') !== undefined;
}

/**
 * Checks `X-Chatwoot-Signature` (`sha256=hex(HMAC(secret, "<timestamp>.<raw body>"))`)
 * against the raw bytes, and that the timestamp is at most `maxAgeS` old
 * (`reference/chatwoot.md` §3.1; Chatwoot enforces no replay window itself).
 */
export function verifySignature(req: Request, raw: Buffer, o: { signingSecret: string; maxAgeS: number; nowS?: number }): WebhookAuthResult {
  const signature = req.get('x-chatwoot-signature');
  const ts = req.get('x-chatwoot-timestamp');
  if (!signature || !ts) return { ok: false, reason: 'missing X-Chatwoot-Signature or X-Chatwoot-Timestamp' };
  if (!/^\d{1,12}$/.test(ts)) return { ok: false, reason: 'malformed X-Chatwoot-Timestamp' };
  const age = Math.abs((o.nowS ?? Math.floor(Date.now() / 1000)) - Number(ts));
  if (age > o.maxAgeS) return { ok: false, reason: `signature timestamp is ${age} s old (limit ${o.maxAgeS} s)` };
  const expected = `sha256=${createHmac('sha256', o.signingSecret).update(`${ts}.`).update(raw).digest('hex')}`;
  if (!safeEqual(signature, expected)) return { ok: false, reason: 'signature does not match' };
  return { ok: true };
}
