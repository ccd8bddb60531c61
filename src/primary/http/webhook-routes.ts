/** Chatwoot's webhooks: the account webhook with operator commands, and each Ponte inbox's webhook with agent replies. */
import express, { type Request, type Response, Router } from 'express';
import type { AcceptedCommand } from '../commands/command-intake.js';
import { parseCommand } from '../commands/parse.js';
import type { Config } from '../../config/schema.js';
import { parseJson } from '../../lib/parse.js';
import { parseInstanceKey } from '../../model/instance-key.js';
import type { Logger } from '../../observability/logger.js';
import { decideInboxEvent, type OutboundJob } from '../../outbound/inbox-events.js';
import { isSigned, verifySignature, webhookToken } from './webhook-auth.js';
import { PONTE_SOURCE_PREFIX } from '../../model/source-id.js';

/** An authentic event Ponte keeps: an agent message for an instance's outbound queue, or a command. */
export type AcceptedWebhook = { kind: 'outbound'; instanceKey: string; job: OutboundJob } | { kind: 'command'; command: AcceptedCommand };

export interface WebhookRoutesDeps {
  config: Readonly<Config>;
  /** Whether an instance exists, from memory (a webhook never waits on Redis to know). */
  isInstance(instanceKey: string): boolean;
  /** Each inbox's signing secret as last read, and a re-read after a mismatch (undefined when unchanged). */
  inboxSecrets: { current(instanceKey: string): string | undefined; refresh(instanceKey: string): Promise<string | undefined> };
  /**
   * Hands an accepted event to Redis, or past its budget to the local
   * journal (DESIGN.md, Decisions 17); rejects only when it could be stored
   * nowhere.
   */
  accept(event: AcceptedWebhook): Promise<'direct' | 'journaled'>;
  log: Logger;
}

/** Reads the raw body (signatures are checked on the exact bytes), then parses JSON. */
const rawBody = express.raw({ type: () => true, limit: '2mb' });

function parseBody(raw: Buffer): Record<string, unknown> | undefined {
  const v = parseJson(raw.toString('utf8'));
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined);

/**
 * Chatwoot gives a webhook 5 s, never retries, and marks the message failed
 * on any non-2xx (DESIGN.md, Decisions 7), so an authentic request is
 * answered 2xx whether it is acted on or ignored, and nothing slow happens
 * before the answer. A stranger gets a 4xx with a reason before any body is
 * read (wrong token) or before anything is stored (wrong signature).
 */
export function webhookRoutes(deps: WebhookRoutesDeps): Router {
  const router = Router();
  const log = deps.log.child({ module: 'webhook' });
  const refused = (route: string) => (req: Request, reason: string) => log.warn({ route, reason, ip: req.ip }, 'webhook refused');
  const agentEmails = deps.config.webhook.authorizedAgentEmails;
  const keyword = deps.config.webhook.commandKeyword;

  /**
   * `POST /webhook/comando`: the account webhook. Only messages that read as
   * a command are kept (in Redis until carried out: `CommandIntake`); who
   * may give one is decided afterwards (`authorizeCommand`).
   */
  router.post('/webhook/comando', webhookToken(deps.config.webhook.secret, refused('comando')), rawBody, async (req: Request, res: Response) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const signingSecret = deps.config.chatwoot.accountWebhookSecret;
    if (signingSecret) {
      const auth = verifySignature(req, raw, { signingSecret, maxAgeS: deps.config.webhook.signatureMaxAgeS });
      if (!auth.ok) {
        refused('comando')(req, auth.reason);
        res.status(401).json({ error: 'unauthorized', message: auth.reason });
        return;
      }
    }
    const payload = parseBody(raw);
    if (!payload) {
      res.status(400).json({ error: 'bad_request', message: 'body: must be a JSON object (a Chatwoot webhook payload)' });
      return;
    }
    if (typeof payload.event !== 'string') {
      res.status(400).json({ error: 'bad_request', message: 'event: is required' });
      return;
    }
    // Most messages an account webhook sees are customers' and agents' own: not commands, nothing stored.
    const sourceId = typeof payload.source_id === 'string' ? payload.source_id : '';
    if (payload.event !== 'message_created' || sourceId.startsWith(PONTE_SOURCE_PREFIX) || parseCommand(typeof payload.content === 'string' ? payload.content : '', keyword) === undefined) {
      res.status(200).json({ ok: true, ignored: 'not a command' });
      return;
    }
    const id = typeof payload.id === 'number' || (typeof payload.id === 'string' && /^\d{1,18}$/.test(payload.id)) ? String(payload.id) : '';
    if (!id) {
      res.status(200).json({ ok: true, ignored: 'a command message without an id' });
      return;
    }
    const command: AcceptedCommand = { id: `${payload.event}:${id}`, payload, signed: signingSecret !== undefined, acceptedAtMs: Date.now() };
    const how = await deps.accept({ kind: 'command', command });
    res.status(200).json({ ok: true, accepted: how });
  });

  /**
   * `POST /webhook/chatwoot/:instance`: the API inbox's webhook. Agent
   * messages (and their deletes and Retries) are queued for the instance's
   * worker; everything else authentic is answered 200 and ignored. Signed
   * with the inbox's own secret when Ponte has read it (DESIGN.md,
   * Decisions 9); once it has, unsigned deliveries are refused unless
   * `WEBHOOK_REQUIRE_SIGNATURE=false`.
   */
  router.post(
    '/webhook/chatwoot/:instance',
    (req, res, next) => {
      const key = typeof req.params.instance === 'string' ? req.params.instance : '';
      if (!parseInstanceKey(key)) {
        res.status(400).json({ error: 'bad_request', message: `instance: ${JSON.stringify(key)} is not <account_id>-<inbox_id>` });
        return;
      }
      next();
    },
    webhookToken(deps.config.webhook.secret, refused('inbox')),
    (req, res, next) => {
      const key = String(req.params.instance);
      if (!deps.isInstance(key)) {
        res.status(404).json({ error: 'not_found', message: `no instance ${key}; create it with "erga <inbox_id> <account_id>"` });
        return;
      }
      next();
    },
    rawBody,
    async (req: Request, res: Response) => {
      const key = String(req.params.instance);
      const ref = parseInstanceKey(key)!;
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const auth = await checkInboxSignature(req, raw, key);
      if (!auth.ok) {
        log.warn({ route: 'inbox', instanceId: key, reason: auth.reason, ip: req.ip }, 'webhook refused');
        res.status(401).json({ error: 'unauthorized', message: auth.reason });
        return;
      }
      const payload = parseBody(raw);
      if (!payload || typeof payload.event !== 'string') {
        res.status(400).json({ error: 'bad_request', message: payload ? 'event: is required' : 'body: must be a JSON object (a Chatwoot webhook payload)' });
        return;
      }
      // An account webhook pointed at an inbox URL carries every inbox's events: act only on this instance's.
      const inboxId = num((payload.inbox as { id?: unknown } | undefined)?.id) ?? num(payload.inbox_id) ?? num((payload.conversation as { inbox_id?: unknown } | undefined)?.inbox_id);
      if (inboxId !== ref.inboxId) {
        log.warn({ instanceId: key, payloadInbox: inboxId ?? null, event: payload.event }, 'inbox webhook event of another inbox ignored');
        res.status(200).json({ ok: true, ignored: inboxId === undefined ? 'the event names no inbox' : 'event of another inbox' });
        return;
      }
      const decision = decideInboxEvent(payload, { commandKeyword: keyword, agentEmails });
      if (decision.action === 'ignore') {
        res.status(200).json({ ok: true, ignored: decision.reason });
        return;
      }
      if (decision.job.accountId !== ref.accountId) {
        res.status(200).json({ ok: true, ignored: 'event of another account' });
        return;
      }
      const how = await deps.accept({ kind: 'outbound', instanceKey: key, job: decision.job });
      res.status(200).json({ ok: true, queued: decision.job.kind, accepted: how });
    },
  );

  async function checkInboxSignature(req: Request, raw: Buffer, key: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    const maxAgeS = deps.config.webhook.signatureMaxAgeS;
    const secret = deps.inboxSecrets.current(key);
    if (!isSigned(req)) {
      if (secret && deps.config.webhook.requireSignature) return { ok: false, reason: 'unsigned webhook: this inbox signs its webhooks (X-Chatwoot-Signature); set WEBHOOK_REQUIRE_SIGNATURE=false only for a Chatwoot that does not' };
      return { ok: true };
    }
    if (secret) {
      const first = verifySignature(req, raw, { signingSecret: secret, maxAgeS });
      if (first.ok || first.reason !== 'signature does not match') return first;
    }
    // Unknown or changed secret (Chatwoot's "reset secret"): read it once more before refusing.
    const fresh = await deps.inboxSecrets.refresh(key);
    if (fresh) return verifySignature(req, raw, { signingSecret: fresh, maxAgeS });
    if (!secret) return { ok: true };
    return { ok: false, reason: 'signature does not match' };
  }

  return router;
}
