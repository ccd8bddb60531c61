import express, { type Request, type Response, Router } from 'express';
import type { Redis } from 'ioredis';
import { authorizeCommand, type CommandEvent } from '../commands/authorize.js';
import type { CommandService } from '../commands/command-service.js';
import { parseCommand } from '../commands/parse.js';
import type { Config } from '../config/schema.js';
import type { InstanceRegistry } from '../instances/registry.js';
import { coerceError } from '../lib/errors.js';
import { instanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import { parseMapping } from '../queue/inbound-store.js';
import type { RedisKeys } from '../queue/keys.js';
import { verifyWebhook } from './webhook-auth.js';
import type { Queue } from 'bullmq';
import { decideInboxEvent, type OutboundJob } from '../outbound/inbox-events.js';
import { enqueueOutbound } from '../outbound/outbound-queue.js';
import { parseInstanceKey } from '../model/instance-key.js';

export interface WebhookRoutesDeps {
  config: Readonly<Config>;
  /** Where agent messages are queued for the instance's worker. */
  outbound: { queue(instanceKey: string): Queue<OutboundJob>; inboxSecret(instanceKey: string): string | undefined };
  redis: Redis;
  keys: RedisKeys;
  registry: InstanceRegistry;
  commands: CommandService;
  log: Logger;
}

/** Reads the raw body (signatures are checked on the exact bytes), then parses JSON. */
const rawBody = express.raw({ type: () => true, limit: '2mb' });

function parseJson(raw: Buffer): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(raw.toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `POST /webhook/comando`: Chatwoot's account webhook with operator
 * commands. Chatwoot gives a webhook 5 s, never retries, and marks the
 * message failed on any non-2xx, so an authentic request is answered 200 at
 * once whether it is acted on or ignored, and the work happens afterwards.
 * A repeated delivery (same event and message id) is answered and dropped.
 */
export function webhookRoutes(d: WebhookRoutesDeps): Router {
  const router = Router();
  const log = d.log.child({ module: 'webhook' });

  router.post('/webhook/comando', rawBody, async (req: Request, res: Response) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const auth = verifyWebhook(req, raw, { secret: d.config.webhook.secret, signingSecret: d.config.chatwoot.accountWebhookSecret, maxAgeS: d.config.webhook.signatureMaxAgeS });
    if (!auth.ok) {
      log.warn({ route: 'comando', reason: auth.reason, ip: req.ip }, 'webhook refused');
      res.status(401).json({ error: 'unauthorized', message: auth.reason });
      return;
    }
    const payload = parseJson(raw);
    if (!payload) {
      res.status(400).json({ error: 'bad_request', message: 'body: must be a JSON object (a Chatwoot webhook payload)' });
      return;
    }
    if (typeof payload.event !== 'string') {
      res.status(400).json({ error: 'bad_request', message: 'event: is required' });
      return;
    }
    const id = typeof payload.id === 'number' || typeof payload.id === 'string' ? String(payload.id) : '';
    if (id) {
      const first = await d.redis.set(`${d.keys.prefix}webhook:comando:${payload.event}:${id}`, '1', 'EX', 86_400, 'NX');
      if (first === null) {
        res.status(200).json({ ok: true, ignored: 'duplicate delivery' });
        return;
      }
    }
    res.status(200).json({ ok: true });
    void act(payload as CommandEvent).catch((err: unknown) => log.error({ err: coerceError(err), messageId: id }, 'command failed'));
  });

  /**
   * `POST /webhook/chatwoot/:instance`: the API inbox's webhook. Agent
   * messages (and their deletes and Retries) are queued for the instance's
   * worker and answered 200 in milliseconds; everything else authentic is
   * answered 200 and ignored. Signed with the inbox's own secret when Ponte
   * has it (DESIGN.md, Decisions 9).
   */
  router.post('/webhook/chatwoot/:instance', rawBody, async (req: Request, res: Response) => {
    const key = typeof req.params.instance === 'string' ? req.params.instance : '';
    if (!parseInstanceKey(key)) {
      res.status(400).json({ error: 'bad_request', message: `instance: ${JSON.stringify(key)} is not <account_id>-<inbox_id>` });
      return;
    }
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const auth = verifyWebhook(req, raw, { secret: d.config.webhook.secret, signingSecret: d.outbound.inboxSecret(key), maxAgeS: d.config.webhook.signatureMaxAgeS });
    if (!auth.ok) {
      log.warn({ route: 'inbox', instanceId: key, reason: auth.reason, ip: req.ip }, 'webhook refused');
      res.status(401).json({ error: 'unauthorized', message: auth.reason });
      return;
    }
    if (!(await d.registry.get(key))) {
      res.status(404).json({ error: 'not_found', message: `no instance ${key}; create it with "erga <inbox_id> <account_id>"` });
      return;
    }
    const payload = parseJson(raw);
    if (!payload || typeof payload.event !== 'string') {
      res.status(400).json({ error: 'bad_request', message: payload ? 'event: is required' : 'body: must be a JSON object (a Chatwoot webhook payload)' });
      return;
    }
    const decision = decideInboxEvent(payload);
    if (decision.action === 'ignore') {
      res.status(200).json({ ok: true, ignored: decision.reason });
      return;
    }
    if (decision.job.accountId !== parseInstanceKey(key)!.accountId) {
      res.status(200).json({ ok: true, ignored: 'event of another account' });
      return;
    }
    await enqueueOutbound(d.outbound.queue(key), decision.job, { redis: d.redis, keys: d.keys, instanceKey: key });
    res.status(200).json({ ok: true, queued: decision.job.kind });
  });

  async function act(payload: CommandEvent): Promise<void> {
    // Most messages an account webhook sees are customers' and agents' own: not commands.
    if (parseCommand(typeof payload.content === 'string' ? payload.content : '', d.config.webhook.commandKeyword) === undefined) return;
    const decision = await authorizeCommand(payload, {
      commandInboxId: d.config.chatwoot.commandInboxId,
      authorizedPhones: d.config.webhook.authorizedPhones,
      isPonteInbox: async (accountId, inboxId) => (await d.registry.get(instanceKey({ accountId, inboxId }))) !== undefined,
      relayed: async (accountId, inboxId, waId) => {
        // Chatwoot's webhook can overtake Ponte's own record of the create; wait a little for it.
        const key = d.keys.waToCw(instanceKey({ accountId, inboxId }), waId);
        for (let i = 0; i < 20; i++) {
          const v = await d.redis.get(key);
          if (v) return parseMapping(v);
          await new Promise((r) => setTimeout(r, 250));
        }
        return undefined;
      },
    });
    if (!decision.act) {
      log[decision.log]({ messageId: payload.id, inboxId: payload.inbox?.id, reason: decision.reason }, 'command message ignored');
      return;
    }
    await d.commands.handle(decision.ctx);
  }

  return router;
}
