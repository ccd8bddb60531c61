import express, { type NextFunction, type Request, type Response, Router } from 'express';
import QRCode from 'qrcode';
import { z } from 'zod';
import { ControlError } from '../cluster/ipc.js';
import type { ControlPlane } from '../primary/control-plane.js';
import type { Supervisor } from '../primary/supervisor.js';
import { describeZodError } from '../whatsapp/sandbox/control.js';
import { SANDBOX_DISCONNECTS } from '../whatsapp/sandbox/sandbox-socket.js';
import { bearerAuth } from './auth.js';
import { buildGlobalStatus, createMetrics } from './status.js';

const id = z.coerce.number().int().min(1).max(9_999_999_999);
const CreateSchema = z.object({
  inbox: id,
  account: id,
  notify: z.object({ account: id, conversation: id }).optional(),
});
const PhoneSchema = z.object({ phone: z.string().regex(/^\+?[\d\s()-]{8,20}$/, 'must be a phone number with country code') });
const ReceiptSchema = z.object({ id: z.string().min(1, 'is required'), status: z.enum(['delivered', 'read']) });
const CallSchema = z.object({
  from: z.string().regex(/^\+?[\d\s()-]{8,20}$|@(s\.whatsapp\.net|lid)$/, 'must be a phone number or a JID'),
  id: z.string().regex(/^[A-Za-z0-9]{1,64}$/, 'must be letters and digits').optional(),
  video: z.boolean().optional(),
  status: z.enum(['timeout', 'offer']).default('timeout'),
});
const GroupSchema = z.object({ jid: z.string().regex(/@g\.us$/, 'must end with @g.us'), subject: z.string().min(1, 'is required').max(100) });
const DisconnectSchema = z.object({ reason: z.enum(Object.keys(SANDBOX_DISCONNECTS) as [keyof typeof SANDBOX_DISCONNECTS, ...Array<keyof typeof SANDBOX_DISCONNECTS>]) });

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (!r.success) throw new ControlError('bad_request', describeZodError(r.error), 400);
  return r.data;
}

function param(req: Request, name: string): string {
  const v = req.params[name];
  return typeof v === 'string' ? v : '';
}

export interface OperatorRoutesDeps {
  control: ControlPlane;
  supervisor: Supervisor;
  sandbox: boolean;
  adminToken: string | undefined;
  statusToken: string | undefined;
  version: string;
  publicUrl: string | undefined;
}

/**
 * The operator surface of the primary: `/admin/instances` (list, create,
 * start, stop, logout, pairing code, QR), `/sandbox/instances/...` in sandbox
 * mode, and `/global-status`.
 */
export function operatorRoutes(d: OperatorRoutesDeps): Router {
  const router = Router();
  // One role per token (DESIGN.md, Decisions 16): the status token never opens the admin API.
  const admin = bearerAuth([d.adminToken], 'the admin API');
  const json = express.json({ limit: '20mb' });

  // Administrators may read the status too.
  const statusAuth = bearerAuth([d.statusToken, d.adminToken], '/global-status and /metrics');
  const snapshot = () => buildGlobalStatus(d.control, d.supervisor, d.version);
  const metrics = createMetrics(snapshot);
  router.get('/global-status', statusAuth, async (_req, res) => {
    res.json(await snapshot());
  });
  router.get('/metrics', statusAuth, async (_req, res) => {
    const text = await metrics.scrape();
    res.type(metrics.registry.contentType).send(text);
  });

  router.get('/admin/instances', admin, async (_req, res) => {
    const list = await d.control.list();
    res.json({ instances: list.map(({ status, ...r }) => ({ ...r, ...(status ? { status: { ...status, qr: undefined } } : {}) })) });
  });

  router.post('/admin/instances', admin, json, async (req, res) => {
    const b = parse(CreateSchema, req.body);
    const { record, created, slot } = await d.control.create({
      accountId: b.account,
      inboxId: b.inbox,
      ...(b.notify ? { notify: { accountId: b.notify.account, conversationId: b.notify.conversation } } : {}),
    });
    res.status(created ? 201 : 200).json({
      instance: record.instanceKey,
      worker: slot,
      webhookUrl: `${d.publicUrl ?? ''}/webhook/chatwoot/${record.instanceKey}`,
      qr: `/admin/instances/${record.instanceKey}/qr`,
    });
  });

  for (const action of ['start', 'stop'] as const) {
    router.post(`/admin/instances/:instance/${action}`, admin, async (req, res) => {
      const record = await d.control[action](param(req, 'instance'));
      res.json({ instance: record.instanceKey, desired: record.desired });
    });
  }

  router.post('/admin/instances/:instance/logout', admin, async (req, res) => {
    await d.control.logout(param(req, 'instance'));
    res.json({ instance: param(req, 'instance'), loggedOut: true });
  });

  router.post('/admin/instances/:instance/pairing-code', admin, json, async (req, res) => {
    const { phone } = parse(PhoneSchema, req.body);
    res.json(await d.control.call(param(req, 'instance'), 'pairing-code', { phone }));
  });

  router.get('/admin/instances/:instance/qr', admin, async (req, res) => {
    const key = param(req, 'instance');
    await d.control.call(key, 'status');
    const qr = d.control.currentQr(key);
    if (!qr) throw new ControlError('no_qr', `instance ${key} is not showing a QR (linked, stopped, or not connected yet)`, 404);
    if (req.query.format === 'text') {
      res.json({ qr });
      return;
    }
    res.type('png').send(await QRCode.toBuffer(qr, { type: 'png', width: 400, margin: 2 }));
  });

  if (d.sandbox) {
    router.post('/sandbox/instances/:instance/scan', admin, json, async (req, res) => {
      const { phone } = parse(PhoneSchema, req.body);
      res.json(await d.control.call(param(req, 'instance'), 'sandbox.scan', { phone: phone.replace(/\D/g, '') }));
    });
    router.post('/sandbox/instances/:instance/messages', admin, json, async (req, res) => {
      if (!req.body || typeof req.body !== 'object') throw new ControlError('bad_request', 'body: must be a JSON object', 400);
      res.status(201).json(await d.control.call(param(req, 'instance'), 'sandbox.message', req.body));
    });
    router.post('/sandbox/instances/:instance/receipts', admin, json, async (req, res) => {
      res.json(await d.control.call(param(req, 'instance'), 'sandbox.receipt', parse(ReceiptSchema, req.body)));
    });
    router.post('/sandbox/instances/:instance/disconnect', admin, json, async (req, res) => {
      res.json(await d.control.call(param(req, 'instance'), 'sandbox.disconnect', parse(DisconnectSchema, req.body)));
    });
    router.post('/sandbox/instances/:instance/calls', admin, json, async (req, res) => {
      res.status(201).json(await d.control.call(param(req, 'instance'), 'sandbox.call', parse(CallSchema, req.body)));
    });
    router.post('/sandbox/instances/:instance/groups', admin, json, async (req, res) => {
      res.json(await d.control.call(param(req, 'instance'), 'sandbox.group', parse(GroupSchema, req.body)));
    });
    router.get('/sandbox/instances/:instance/read', admin, async (req, res) => {
      res.json({ ids: await d.control.readReceipts(param(req, 'instance')) });
    });
    router.get('/sandbox/instances/:instance/outbox', admin, async (req, res) => {
      res.json({ messages: await d.control.outbox(param(req, 'instance')) });
    });
  }

  return router;
}

/** Maps control errors (and body-parser errors) to JSON answers with a reason. */
export function controlErrorHandler(err: unknown, _req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) return next(err);
  if (err instanceof ControlError) {
    res.status(err.status).json({ error: err.code, message: err.message });
    return;
  }
  const status = (err as { status?: unknown }).status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    res.status(status).json({ error: 'bad_request', message: (err as Error).message });
    return;
  }
  next(err);
}
