/**
 * Chatwoot's outgoing webhooks, as `WebhookListener` and
 * `Webhooks::Trigger` send them (`reference/chatwoot.md` §3.1): to the
 * API inbox's `webhook_url` (every conversation/message event, no filter)
 * and to the account webhooks subscribed to the event; one attempt, 5 s
 * timeout, signed with the target's secret; a failed `message_created` or
 * `message_updated` on an API-inbox webhook marks the message failed
 * (which itself fires `message_updated`). Delivery is asynchronous: never
 * inside the API request that caused it.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { AccountRecord, CwMessageRecord, Store } from './store.js';

export interface WebhookDelivery {
  url: string;
  event: string;
  status: number | 'error';
}

/** Events an API inbox's `webhook_url` receives (contact and inbox events go to account webhooks only). */
const INBOX_EVENTS = new Set([
  'message_created',
  'message_updated',
  'conversation_created',
  'conversation_updated',
  'conversation_status_changed',
  'conversation_typing_on',
  'conversation_typing_off',
  'webwidget_triggered',
]);
/** `Webhooks::Trigger::SUPPORTED_ERROR_HANDLE_EVENTS`. */
const FAILURE_MARKING_EVENTS = new Set(['message_created', 'message_updated']);
const WEBHOOK_TIMEOUT_MS = 5000;

/** Rails' JSON encoding escapes these (`ActiveSupport::JSON::Encoding.escape_html_entities_in_json`). */
function railsJson(payload: unknown): string {
  return JSON.stringify(payload).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export class Webhooks {
  private readonly log: WebhookDelivery[] = [];
  private readonly pending = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly enabled: boolean,
  ) {}

  deliveries(): WebhookDelivery[] {
    return [...this.log];
  }

  /** Waits for the deliveries in flight (each is bounded by the 5 s timeout). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.settle();
  }

  /** A message event (never for `activity` messages). */
  message(account: AccountRecord, m: CwMessageRecord, event: 'message_created' | 'message_updated'): void {
    if (!this.enabled || this.closed || m.message_type === 'activity') return;
    // The payload is built now: the double has no job queue between the change and the send.
    this.emit(account, m.inbox_id, event, this.store.messageWebhookJson(account, m, event), m);
  }

  /** A conversation event (`conversation_created`, `conversation_status_changed`, `conversation_updated`). */
  conversation(account: AccountRecord, conversationId: number, event: string, extra: Record<string, unknown> = {}): void {
    if (!this.enabled || this.closed) return;
    const conv = account.conversations.get(conversationId);
    if (!conv) return;
    this.emit(account, conv.inbox_id, event, { ...this.store.conversationWebhookJson(account, conv), event, ...extra });
  }

  /** An account-level event (`contact_created`, `contact_updated`): account webhooks only. */
  account(account: AccountRecord, event: string, payload: Record<string, unknown>): void {
    if (!this.enabled || this.closed) return;
    this.emit(account, undefined, event, { ...payload, event });
  }

  private emit(account: AccountRecord, inboxId: number | undefined, event: string, payload: Record<string, unknown>, message?: CwMessageRecord): void {
    const targets: Array<{ url: string; secret: string | undefined; apiInbox: boolean }> = [];
    const inbox = inboxId !== undefined ? this.store.inboxes.get(inboxId) : undefined;
    if (inbox?.webhook_url && INBOX_EVENTS.has(event)) targets.push({ url: inbox.webhook_url, secret: inbox.secret || undefined, apiInbox: true });
    for (const w of account.webhooks) if (w.subscriptions.includes(event)) targets.push({ url: w.url, secret: w.secret, apiInbox: false });
    if (targets.length === 0) return;
    const body = railsJson(payload);
    for (const t of targets) {
      const p = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => this.deliver(t.url, t.secret, body))
        .then(({ status, error }) => {
          this.log.push({ url: t.url, event, status });
          if (error !== undefined && t.apiInbox && message && FAILURE_MARKING_EVENTS.has(event)) {
            // Messages::StatusUpdateService(message, 'failed', error.message); a change fires message_updated.
            if (this.store.updateStatus(message, 'failed', error)) this.message(account, message, 'message_updated');
          }
        });
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    }
  }

  private async deliver(url: string, secret: string | undefined, body: string): Promise<{ status: number | 'error'; error?: string }> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json', 'x-chatwoot-delivery': randomUUID() };
    if (secret) {
      const ts = String(Math.floor(Date.now() / 1000));
      headers['x-chatwoot-timestamp'] = ts;
      headers['x-chatwoot-signature'] = `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;
    }
    try {
      const res = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS) });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { status: res.status };
      return { status: res.status, error: `${res.status} ${STATUS_CODES[res.status] ?? ''}`.trim() };
    } catch (err) {
      const e = err as { name?: string; cause?: { code?: string } };
      if (e.name === 'TimeoutError') return { status: 'error', error: 'Timed out reading data from server' };
      const code = e.cause?.code;
      return { status: 'error', error: code === 'ECONNREFUSED' ? `Failed to open TCP connection to ${new URL(url).host} (Connection refused)` : `Webhook delivery failed: ${code ?? String(err)}` };
    }
  }
}
