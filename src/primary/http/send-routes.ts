/** The send API for other systems: `POST /api/send` and `GET /api/send/:reference`, behind `SEND_TOKEN` alone. */
import { randomUUID } from 'node:crypto';
import express, { type Request, type Response, Router } from 'express';
import { z } from 'zod';
import { ControlError } from '../../cluster/ipc.js';
import { normalizePhone } from '../../lib/phone.js';
import { describeZodError } from '../../lib/zod-errors.js';
import type { OutboundJob } from '../../outbound/inbox-events.js';
import { SEND_REFERENCE, type SendResult, type SendStatus } from '../../outbound/send-references.js';
import type { ControlPlaneLike } from './operator-routes.js';
import { bearerAuth } from './auth.js';

/** Most options a question may carry (a WhatsApp poll holds 12; a numbered list stays readable). */
export const MAX_SEND_OPTIONS = 12;

/** The worker's deadline for a send without attachment: a few Chatwoot calls, and a wait behind a concurrent request with the same reference. */
const SEND_CALL_MS = 45_000;

const httpUrl = z.string().refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), 'must be an http(s) URL');
const SendSchema = z
  .object({
    instance: z.string({ error: 'is required' }).min(1, 'is required'),
    to: z.string({ error: 'is required' }).refine((v) => normalizePhone(v) !== undefined, 'must be a phone number with country code, such as +55 21 98765-4321'),
    text: z.string({ error: 'must be a string' }).max(65_536, 'must be at most 65536 characters').default(''),
    attachmentUrl: httpUrl.optional(),
    options: z.array(z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters')).min(1, 'must list at least one option').max(MAX_SEND_OPTIONS, `must list at most ${MAX_SEND_OPTIONS} options`).optional(),
    reference: z.string().regex(SEND_REFERENCE, 'must be 1-100 letters, digits or . _ : -').optional(),
  })
  .strict()
  .refine((b) => b.text.trim() !== '' || b.attachmentUrl !== undefined, { message: 'is required unless attachmentUrl is given', path: ['text'] })
  .refine((b) => b.options === undefined || b.text.trim() !== '', { message: 'must hold the question the options answer', path: ['text'] })
  .refine((b) => b.options === undefined || new Set(b.options.map((o) => o.toLowerCase())).size === b.options.length, { message: 'must be different from each other', path: ['options'] });

export interface SendRoutesDeps {
  control: Pick<ControlPlaneLike, 'call' | 'known'>;
  /** Queues the message's job as the inbox webhook would (idempotent by Chatwoot message id). */
  enqueue(instanceKey: string, job: OutboundJob): Promise<void>;
  /** The status of a message of the instance. */
  statusOf(instanceKey: string, messageId: number): Promise<{ status: SendStatus; reason?: string }>;
  /** What a reference of the instance created, with its status; `undefined` when unknown. */
  status(instanceKey: string, reference: string): Promise<{ status: SendStatus; reason?: string; conversationId: number; messageId: number } | undefined>;
  /** `OUTBOUND_MEDIA_TIMEOUT_MS`: a send with an attachment waits for its download as well. */
  mediaTimeoutMs: number;
  sendToken: string | undefined;
  adminToken: string | undefined;
  statusToken: string | undefined;
}

/**
 * `SEND_TOKEN` and no other: the admin and status tokens are refused with
 * their role named. Unset, the API is off and answers 503 saying how to turn
 * it on (not 404: the caller has the right URL, the daemon is not set up for
 * it); it never opens to anyone, loopback included.
 */
function sendAuth(deps: SendRoutesDeps) {
  if (deps.sendToken === undefined) {
    return (_req: Request, res: Response): void => {
      res.status(503).json({ error: 'not_configured', message: 'the send API is off: set SEND_TOKEN (at least 16 characters) to turn it on' });
    };
  }
  return bearerAuth([deps.sendToken], 'the send API', [
    { token: deps.adminToken, name: 'ADMIN_TOKEN' },
    { token: deps.statusToken, name: 'STATUS_TOKEN' },
  ]);
}

function isSendResult(v: unknown): v is SendResult {
  const r = v as Partial<SendResult> | null;
  return !!r && typeof r.conversationId === 'number' && typeof r.messageId === 'number' && typeof r.job === 'object' && r.job !== null;
}

export function sendRoutes(deps: SendRoutesDeps): Router {
  const router = Router();
  const auth = sendAuth(deps);
  const json = express.json({ limit: '256kb' });

  router.post('/api/send', auth, json, async (req: Request, res: Response) => {
    const parsed = SendSchema.safeParse(req.body ?? {});
    if (!parsed.success) throw new ControlError('bad_request', describeZodError(parsed.error));
    const b = parsed.data;
    const reference = b.reference ?? randomUUID();
    const args = {
      to: normalizePhone(b.to),
      text: b.text,
      reference,
      ...(b.attachmentUrl ? { attachmentUrl: b.attachmentUrl } : {}),
      ...(b.options ? { options: b.options } : {}),
    };
    const result = await deps.control.call(b.instance, 'send', args, (b.attachmentUrl ? deps.mediaTimeoutMs : 0) + SEND_CALL_MS);
    if (!isSendResult(result)) throw new Error('the worker answered send without ids');
    // A new message is queued now; a repeat answers how far the first one got.
    const { status } = result.repeated ? await deps.statusOf(b.instance, result.messageId) : { status: 'queued' as const };
    // Queued again on a repeat too: a no-op once queued, and it finishes a first request that stopped between the two steps.
    await deps.enqueue(b.instance, result.job);
    res.status(202).json({ reference, conversationId: result.conversationId, messageId: result.messageId, status });
  });

  router.get('/api/send/:reference', auth, async (req: Request, res: Response) => {
    const instance = typeof req.query.instance === 'string' ? req.query.instance : '';
    if (!instance) throw new ControlError('bad_request', 'instance: is required (?instance=<account>-<inbox>)');
    const given = req.params.reference;
    const reference = typeof given === 'string' ? given : '';
    if (!SEND_REFERENCE.test(reference)) throw new ControlError('bad_request', 'reference: must be 1-100 letters, digits or . _ : -');
    await deps.control.known(instance);
    const s = await deps.status(instance, reference);
    if (!s) throw new ControlError('not_found', `instance ${instance} has sent nothing with reference ${reference} in the last 7 days`);
    res.json({ reference, status: s.status, ...(s.reason ? { reason: s.reason } : {}), conversationId: s.conversationId, messageId: s.messageId });
  });

  return router;
}

