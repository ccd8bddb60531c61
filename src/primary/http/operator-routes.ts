/** The operator surface of the primary: `/admin/instances`, `/sandbox/instances` in sandbox mode, `/global-status` and `/metrics`. */
import { randomUUID } from 'node:crypto';
import express, { type Request, Router } from 'express';
import QRCode from 'qrcode';
import { z } from 'zod';
import { ChatwootError } from '../../chatwoot/errors.js';
import { ControlError, type WorkerOp } from '../../cluster/ipc.js';
import type { NewInbox, NewInboxRequest } from '../commands/inbox-provisioner.js';
import { MAX_INBOX_NAME } from '../commands/parse.js';
import { describeZodError } from '../../lib/zod-errors.js';
import type { GlobalStatus } from '../../model/global-status.js';
import { MAX_IMPORT_DAYS } from '../../model/history-import.js';
import { BOT_OPTIONS_STYLES, type BotOptionsStyle } from '../../model/bot-question.js';
import type { InstanceRecord, InstanceSettingsPatch, InstanceView } from '../../model/instance.js';
import { createMetrics } from '../../observability/metrics.js';
import { SANDBOX_DISCONNECTS, type OutboxEntry, type SocketLogEntry } from '../../sandbox/schemas.js';
import { bearerAuth } from './auth.js';

const id = z.coerce.number().int().min(1).max(9_999_999_999);
/** `{inbox, account}` links an existing API inbox; `{name, account}` creates one named so (`erga new`). */
const CreateSchema = z
  .object({
    inbox: id.optional(),
    name: z.string().trim().min(1, 'must not be empty').max(MAX_INBOX_NAME, `must be at most ${MAX_INBOX_NAME} characters`).optional(),
    account: id,
    notify: z.object({ account: id, conversation: id }).optional(),
  })
  .refine((b) => (b.inbox === undefined) !== (b.name === undefined), { message: 'give either inbox (an existing API inbox to link) or name (a new API inbox to create), not both', path: ['inbox'] });
const PhoneSchema = z.object({ phone: z.string().regex(/^\+?[\d\s()-]{8,20}$/, 'must be a phone number with country code') });
const LimitsSchema = z
  .object({
    reachoutLockMs: z.number().int().min(0, 'must be 0 (no lock) or more').max(7 * 24 * 3600_000, 'must be at most 7 days').optional(),
    newChatCap: z
      .object({
        status: z.enum(['NONE', 'FIRST_WARNING', 'SECOND_WARNING', 'CAPPED']),
        used: z.number().int().min(0).optional(),
        quota: z.number().int().min(0).optional(),
        cycleEndsInMs: z.number().int().min(0).max(31 * 24 * 3600_000, 'must be at most 31 days').optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((b) => b.reachoutLockMs !== undefined || b.newChatCap !== undefined, { message: 'give reachoutLockMs, newChatCap or both', path: ['reachoutLockMs'] });
const ReceiptSchema = z.object({ id: z.string().min(1, 'is required'), status: z.enum(['delivered', 'read']) });
const CallSchema = z.object({
  from: z.string().regex(/^\+?[\d\s()-]{8,20}$|@(s\.whatsapp\.net|lid)$/, 'must be a phone number or a JID'),
  id: z.string().regex(/^[A-Za-z0-9]{1,64}$/, 'must be letters and digits').optional(),
  video: z.boolean().optional(),
  status: z.enum(['timeout', 'offer']).default('timeout'),
});
const GroupSchema = z.object({ jid: z.string().regex(/@g\.us$/, 'must end with @g.us'), subject: z.string().min(1, 'is required').max(100) });
/** An instance's own settings: a field set, `null` for the global configuration again. */
const SettingsSchema = z
  .object({ botOptionsStyle: z.enum(BOT_OPTIONS_STYLES as [BotOptionsStyle, ...BotOptionsStyle[]], { error: `must be one of ${BOT_OPTIONS_STYLES.join(', ')}, or null for BOT_OPTIONS_STYLE` }).nullable().optional() })
  .strict()
  .refine((b) => Object.keys(b).length > 0, { message: 'give at least one setting (botOptionsStyle)' });
const ImportSchema = z.object({ days: z.number().int().min(1).max(MAX_IMPORT_DAYS).optional() });
const DisconnectSchema = z.object({ reason: z.enum(Object.keys(SANDBOX_DISCONNECTS) as [keyof typeof SANDBOX_DISCONNECTS, ...Array<keyof typeof SANDBOX_DISCONNECTS>]) });

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (!r.success) throw new ControlError('bad_request', describeZodError(r.error));
  return r.data;
}

function param(req: Request, name: string): string {
  const v = req.params[name];
  return typeof v === 'string' ? v : '';
}

/** The instances as the operator routes act on them (the primary's control plane). */
export interface ControlPlaneLike {
  list(): Promise<InstanceView[]>;
  create(request: { accountId: number; inboxId: number; notify?: InstanceRecord['notify'] }): Promise<{ record: InstanceRecord; created: boolean; host?: string; slot?: number }>;
  start(instanceKey: string): Promise<InstanceRecord>;
  stop(instanceKey: string): Promise<InstanceRecord>;
  /** Changes an instance's own settings (rejects with `not_found` for an unknown instance). */
  updateSettings(instanceKey: string, patch: InstanceSettingsPatch): Promise<InstanceRecord>;
  logout(instanceKey: string): Promise<void>;
  /** A control call to the worker that runs the instance (`timeoutMs`: a longer deadline than the usual). */
  call(instanceKey: string, op: WorkerOp, args?: unknown, timeoutMs?: number): Promise<unknown>;
  /** The QR the instance shows now, wherever it runs. */
  currentQr(instanceKey: string): Promise<string | undefined>;
  /** Rejects with `bad_request` or `not_found` unless the instance exists. */
  known(instanceKey: string): Promise<void>;
}

/** What the sandbox recorded of Ponte's sends and read marks. */
export interface SandboxRecordsLike {
  readReceipts(instanceKey: string): Promise<string[]>;
  outbox(instanceKey: string): Promise<OutboxEntry[]>;
  sockets(instanceKey: string): Promise<SocketLogEntry[]>;
}

export interface OperatorRoutesDeps {
  control: ControlPlaneLike;
  /** `GET /global-status`, built from what the primary knows. */
  snapshot: () => Promise<GlobalStatus>;
  /** Present in sandbox mode only: the `/sandbox` routes exist then. */
  sandbox: SandboxRecordsLike | undefined;
  /** Creates the inbox of `POST /admin/instances {name, account}` (`InboxProvisioner`). */
  inboxes: { provision(request: NewInboxRequest): Promise<NewInbox> };
  adminToken: string | undefined;
  statusToken: string | undefined;
  /** `SEND_TOKEN`: opens only `/api/send`, refused here with its role named. */
  sendToken?: string | undefined;
  publicUrl: string | undefined;
  /** `HISTORY_IMPORT_DAYS`: the days an import request without `days` covers (0: it must say). */
  importDays: number;
}

/** Creates the inbox; a Chatwoot outage becomes `chatwoot_unavailable` (its refusals already are `chatwoot_refused`). */
async function newInbox(deps: OperatorRoutesDeps, request: { accountId: number; name: string }): Promise<NewInbox> {
  try {
    return await deps.inboxes.provision({ ...request, ref: `admin-${randomUUID()}` });
  } catch (err) {
    if (!(err instanceof ChatwootError)) throw err;
    const maybe = err.kind === 'lost_response' ? ' It may have created the inbox anyway: look in Settings → Inboxes before asking again.' : ' Try again once it answers.';
    throw new ControlError('chatwoot_unavailable', `Chatwoot could not be reached to create the inbox (${err.message}).${maybe}`);
  }
}

export function operatorRoutes(deps: OperatorRoutesDeps): Router {
  const router = Router();
  // One role per token (DESIGN.md, Decisions 16): the status token never opens the admin API.
  const sendOnly = [{ token: deps.sendToken, name: 'SEND_TOKEN' }];
  const admin = bearerAuth([deps.adminToken], 'the admin API', sendOnly);
  const json = express.json({ limit: '20mb' });

  // Administrators may read the status too.
  const statusAuth = bearerAuth([deps.statusToken, deps.adminToken], '/global-status and /metrics', sendOnly);
  const metrics = createMetrics(deps.snapshot);
  router.get('/global-status', statusAuth, async (_req, res) => {
    res.json(await deps.snapshot());
  });
  router.get('/metrics', statusAuth, async (_req, res) => {
    const text = await metrics.scrape();
    res.type(metrics.registry.contentType).send(text);
  });

  router.get('/admin/instances', admin, async (_req, res) => {
    const list = await deps.control.list();
    res.json({ instances: list.map(({ status, ...r }) => ({ ...r, ...(status ? { status: { ...status, qr: undefined } } : {}) })) });
  });

  router.post('/admin/instances', admin, json, async (req, res) => {
    const b = parse(CreateSchema, req.body);
    const made = b.name !== undefined ? await newInbox(deps, { accountId: b.account, name: b.name }) : undefined;
    const { record, created, host, slot } = await deps.control.create({
      accountId: b.account,
      inboxId: made?.inboxId ?? b.inbox!,
      ...(b.notify ? { notify: { accountId: b.notify.account, conversationId: b.notify.conversation } } : {}),
    });
    res.status(created ? 201 : 200).json({
      instance: record.instanceKey,
      host: host ?? null,
      worker: slot ?? null,
      webhookUrl: `${deps.publicUrl ?? ''}/webhook/chatwoot/${record.instanceKey}`,
      qr: `/admin/instances/${record.instanceKey}/qr`,
      ...(made ? { inbox: { id: made.inboxId, name: made.name, webhookSet: true, secretKnown: made.secretKnown, member: made.memberUserId } } : {}),
    });
  });

  for (const action of ['start', 'stop'] as const) {
    router.post(`/admin/instances/:instance/${action}`, admin, async (req, res) => {
      const record = await deps.control[action](param(req, 'instance'));
      res.json({ instance: record.instanceKey, desired: record.desired });
    });
  }

  // The instance's own settings over the global configuration; its worker reads them at each use.
  router.post('/admin/instances/:instance/settings', admin, json, async (req, res) => {
    const patch = parse(SettingsSchema, req.body);
    const record = await deps.control.updateSettings(param(req, 'instance'), patch);
    res.json({ instance: record.instanceKey, settings: record.settings ?? {} });
  });

  router.post('/admin/instances/:instance/logout', admin, async (req, res) => {
    await deps.control.logout(param(req, 'instance'));
    res.json({ instance: param(req, 'instance'), loggedOut: true });
  });

  router.post('/admin/instances/:instance/replay', admin, async (req, res) => {
    res.json(await deps.control.call(param(req, 'instance'), 'replay'));
  });

  // Imports what Ponte keeps of the number's history and asks the phone for older; progress goes to the instance's notify conversation.
  router.post('/admin/instances/:instance/import', admin, json, async (req, res) => {
    const b = parse(ImportSchema, req.body);
    const days = b.days ?? deps.importDays;
    if (days === 0) throw new ControlError('bad_request', `days: is required (HISTORY_IMPORT_DAYS is 0), a whole number from 1 to ${MAX_IMPORT_DAYS}`);
    const key = param(req, 'instance');
    const result = (await deps.control.call(key, 'import', { days })) as Record<string, unknown>;
    res.status(202).json({ instance: key, ...result });
  });

  router.post('/admin/instances/:instance/pairing-code', admin, json, async (req, res) => {
    const { phone } = parse(PhoneSchema, req.body);
    res.json(await deps.control.call(param(req, 'instance'), 'pairing-code', { phone }));
  });

  router.get('/admin/instances/:instance/qr', admin, async (req, res) => {
    const key = param(req, 'instance');
    await deps.control.call(key, 'status');
    const qr = await deps.control.currentQr(key);
    if (!qr) throw new ControlError('no_qr', `instance ${key} is not showing a QR (linked, stopped, or not connected yet)`);
    if (req.query.format === 'text') {
      res.json({ qr });
      return;
    }
    res.type('png').send(await QRCode.toBuffer(qr, { type: 'png', width: 400, margin: 2 }));
  });

  const sandbox = deps.sandbox;
  if (sandbox) {
    router.post('/sandbox/instances/:instance/scan', admin, json, async (req, res) => {
      const { phone } = parse(PhoneSchema, req.body);
      res.json(await deps.control.call(param(req, 'instance'), 'sandbox.scan', { phone: phone.replace(/\D/g, '') }));
    });
    router.post('/sandbox/instances/:instance/messages', admin, json, async (req, res) => {
      if (!req.body || typeof req.body !== 'object') throw new ControlError('bad_request', 'body: must be a JSON object');
      // `{"messages": [...]}` delivers a burst in one WhatsApp upsert; any other body is one message.
      const batch = 'messages' in req.body;
      res.status(201).json(await deps.control.call(param(req, 'instance'), batch ? 'sandbox.messages' : 'sandbox.message', req.body));
    });
    // A history set from the phone: `{"messages": [...], "contacts": [...]}`, each message as for /messages plus `timestamp`.
    router.post('/sandbox/instances/:instance/history', admin, json, async (req, res) => {
      if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body)) throw new ControlError('bad_request', 'body: must be a JSON object');
      res.status(201).json(await deps.control.call(param(req, 'instance'), 'sandbox.history', req.body));
    });
    router.post('/sandbox/instances/:instance/receipts', admin, json, async (req, res) => {
      res.json(await deps.control.call(param(req, 'instance'), 'sandbox.receipt', parse(ReceiptSchema, req.body)));
    });
    router.post('/sandbox/instances/:instance/disconnect', admin, json, async (req, res) => {
      res.json(await deps.control.call(param(req, 'instance'), 'sandbox.disconnect', parse(DisconnectSchema, req.body)));
    });
    // WhatsApp's reach-out lock: for `reachoutLockMs`, sends to chats that did not write in 24 h are refused with 463 (0 lifts it);
    // `newChatCap`: WhatsApp's count of new chats as it announces it (`message-capping.update`).
    router.post('/sandbox/instances/:instance/limits', admin, json, async (req, res) => {
      res.json(await deps.control.call(param(req, 'instance'), 'sandbox.limits', parse(LimitsSchema, req.body)));
    });
    router.post('/sandbox/instances/:instance/calls', admin, json, async (req, res) => {
      res.status(201).json(await deps.control.call(param(req, 'instance'), 'sandbox.call', parse(CallSchema, req.body)));
    });
    router.post('/sandbox/instances/:instance/groups', admin, json, async (req, res) => {
      res.json(await deps.control.call(param(req, 'instance'), 'sandbox.group', parse(GroupSchema, req.body)));
    });
    router.get('/sandbox/instances/:instance/read', admin, async (req, res) => {
      await deps.control.known(param(req, 'instance'));
      res.json({ ids: await sandbox.readReceipts(param(req, 'instance')) });
    });
    router.get('/sandbox/instances/:instance/outbox', admin, async (req, res) => {
      await deps.control.known(param(req, 'instance'));
      res.json({ messages: await sandbox.outbox(param(req, 'instance')) });
    });
    // Every socket the simulated WhatsApp saw for the instance, on any host: opens, sends, closes.
    router.get('/sandbox/instances/:instance/sockets', admin, async (req, res) => {
      await deps.control.known(param(req, 'instance'));
      res.json({ events: await sandbox.sockets(param(req, 'instance')) });
    });
  }

  return router;
}
