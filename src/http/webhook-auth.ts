import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export type WebhookAuthResult = { ok: true } | { ok: false; reason: string };

/**
 * Every webhook carries `WEBHOOK_SECRET` (query `token` or header
 * `x-ponte-token`). When Chatwoot's signing secret is known, the
 * `X-Chatwoot-Signature` (`sha256=hex(HMAC(secret, "<timestamp>.<raw body>"))`)
 * must match the raw bytes and the timestamp be at most `maxAgeS` old
 * (`reference/chatwoot.md` §3.1; Chatwoot enforces no replay window itself).
 */
export function verifyWebhook(req: Request, raw: Buffer, o: { secret: string; signingSecret?: string | undefined; maxAgeS: number; nowS?: number }): WebhookAuthResult {
  const queryToken = typeof req.query.token === 'string' ? req.query.token : undefined;
  const token = queryToken ?? req.get('x-ponte-token');
  if (!token) return { ok: false, reason: 'missing token: add ?token=<WEBHOOK_SECRET> to the webhook URL' };
  if (!safeEqual(token, o.secret)) return { ok: false, reason: 'wrong token' };
  if (!o.signingSecret) return { ok: true };
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
