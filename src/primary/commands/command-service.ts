/** Carries out operator commands (`erga …`) and reports QR codes, links and alerts to the operator. */
import { randomBytes } from 'node:crypto';
import QRCode from 'qrcode';
import type { ChatwootClientLike } from '../../chatwoot/types.js';
import { ChatwootNotFoundError } from '../../chatwoot/errors.js';
import type { Config } from '../../config/schema.js';
import { coerceError } from '../../lib/errors.js';
import { instanceKey } from '../../model/instance-key.js';
import type { Logger } from '../../observability/logger.js';
import type { WorkerEvent, WorkerOp } from '../../cluster/ipc.js';
import type { InstanceRecord, InstanceView } from '../../model/instance.js';
import { PONTE_SOURCE_PREFIX } from '../../model/source-id.js';
import type { CommandContext } from './authorize.js';
import { parseCommand, usage } from './parse.js';

/**
 * Carries out operator commands and reports on instances in the conversation
 * that asked (its notify target): each QR as a PNG, the link, QR expiry,
 * alerts. An operator writing from WhatsApp through a Ponte inbox gets
 * outgoing replies (so they reach WhatsApp); an agent's command is answered
 * with private notes, so nothing reaches the customer of that conversation.
 * Every reply carries a `PONTE:` source id, so it is never read as a command.
 */
/** The instances as commands act on them (the primary's control plane). */
export interface CommandControlLike {
  list(): Promise<InstanceView[]>;
  record(instanceKey: string): Promise<InstanceRecord | undefined>;
  create(request: { accountId: number; inboxId: number; notify?: InstanceRecord['notify'] }): Promise<{ created: boolean }>;
  start(instanceKey: string): Promise<unknown>;
  stop(instanceKey: string): Promise<unknown>;
  logout(instanceKey: string): Promise<void>;
  call(instanceKey: string, op: WorkerOp, args?: unknown): Promise<unknown>;
}

/** Control codes a pairing-code request answers with while the session is still coming up. */
const NOT_READY_YET = new Set(['NOT_AWAITING_SCAN', 'not_running', 'not_connected', 'worker_unavailable']);

export class CommandService {
  /** Instances that showed a QR since they last opened. */
  private readonly pairing = new Set<string>();

  constructor(
    private readonly deps: {
      config: Readonly<Config>;
      chatwoot: ChatwootClientLike;
      control: CommandControlLike;
      /** The workers' instance events (QR, open, alert, state). */
      events: { on(event: 'event', listener: (e: WorkerEvent) => void): unknown };
      log: Logger;
    },
  ) {
    deps.events.on('event', (e) => {
      if (e.event === 'qr') this.pairing.add(e.instanceKey);
      const wasPairing = e.event === 'open' && this.pairing.delete(e.instanceKey);
      if (e.event === 'open' && !wasPairing) return; // a link is news once; reconnects are not
      void this.report(e.instanceKey, e.event, e.data).catch((err: unknown) => deps.log.warn({ err: coerceError(err), instanceId: e.instanceKey }, 'could not report to the notify conversation'));
    });
  }

  private get keyword(): string {
    return this.deps.config.webhook.commandKeyword;
  }

  private async reply(target: { accountId: number; conversationId: number; private?: boolean }, content: string): Promise<void> {
    await this.deps.chatwoot.createMessage(target.accountId, target.conversationId, { content, message_type: 'outgoing', private: target.private === true, source_id: replySourceId() });
  }

  /** Acts on an authorized command message. */
  async handle(ctx: CommandContext): Promise<void> {
    const cmd = parseCommand(ctx.text, this.keyword, this.deps.config.chatwoot.defaultAccountId);
    if (!cmd) return;
    const here = { accountId: ctx.accountId, conversationId: ctx.conversationId, private: ctx.replyPrivately };
    const say = (text: string) => this.reply(here, text);
    this.deps.log.info({ command: cmd.kind, accountId: ctx.accountId, conversationId: ctx.conversationId, by: ctx.author.kind }, 'command');
    switch (cmd.kind) {
      case 'invalid':
        return say(`⚠️ ${cmd.reason}.\n\n${usage(this.keyword)}`);
      case 'help':
        return say(usage(this.keyword));
      case 'status':
        return say(await this.statusText());
      case 'stop':
      case 'logout':
      case 'replay': {
        const key = instanceKey({ accountId: ctx.accountId, inboxId: cmd.inboxId });
        const record = await this.deps.control.record(key);
        if (!record) return say(`No instance for inbox ${cmd.inboxId} in account ${ctx.accountId}.`);
        if (cmd.kind === 'replay') {
          if (record.desired === 'stopped') return say(`Instance ${key} is stopped; "${this.keyword} ${cmd.inboxId} ${ctx.accountId}" starts it, then replay.`);
          const { replayed } = (await this.deps.control.call(key, 'replay')) as { replayed: number };
          return say(replayed === 0 ? `Instance ${key} has no parked messages.` : `Replaying ${replayed} parked message(s) of ${key}: each goes to the end of its conversation.`);
        }
        if (cmd.kind === 'stop') {
          await this.deps.control.stop(key);
          return say(`Instance ${key} stopped. The phone stays linked; "${this.keyword} ${cmd.inboxId} ${ctx.accountId}" starts it again.`);
        }
        await this.deps.control.logout(key);
        return say(`Instance ${key} logged out: the phone is unlinked and its state deleted.`);
      }
      case 'link':
      case 'code': {
        const key = instanceKey({ accountId: cmd.accountId, inboxId: cmd.inboxId });
        try {
          const inbox = await this.deps.chatwoot.getInbox(cmd.accountId, cmd.inboxId);
          if (inbox.channel_type !== 'Channel::Api') return say(`Inbox ${cmd.inboxId} ("${inbox.name}") is a ${inbox.channel_type} inbox; Ponte needs an API inbox.`);
        } catch (err) {
          if (err instanceof ChatwootNotFoundError) return say(`Inbox ${cmd.inboxId} does not exist in account ${cmd.accountId} (or this token cannot see it).`);
          throw err;
        }
        const existing = (await this.deps.control.list()).find((i) => i.instanceKey === key);
        if (existing?.status?.state === 'open' && existing.desired === 'running') {
          return say(`Instance ${key} is already linked to +${existing.status.phone ?? '?'} and connected. "${this.keyword} logout ${cmd.inboxId}" unlinks it.`);
        }
        const notify = { accountId: ctx.accountId, conversationId: ctx.conversationId, ...(ctx.replyPrivately ? { private: true } : {}) };
        const { created } = await this.deps.control.create({ accountId: cmd.accountId, inboxId: cmd.inboxId, notify });
        if (!created) await this.deps.control.start(key);
        if (cmd.kind === 'code') {
          await say(`Starting ${key}; asking WhatsApp for a pairing code for +${cmd.phone}…`);
          const code = await this.waitForPairingCode(key, cmd.phone);
          return say(code ? `Pairing code for +${cmd.phone}: ${code}\nOn the phone: Linked devices → Link a device → Link with phone number instead.` : `Could not get a pairing code for ${key}; try "${this.keyword} ${cmd.inboxId} ${cmd.accountId}" for a QR.`);
        }
        return say(`Starting ${key}. The QR code follows; scan it in WhatsApp → Linked devices → Link a device.`);
      }
    }
  }

  private async waitForPairingCode(key: string, phone: string): Promise<string | undefined> {
    for (let i = 0; i < 50; i++) {
      try {
        const r = (await this.deps.control.call(key, 'pairing-code', { phone })) as { code?: string };
        if (r.code) return r.code;
      } catch (err) {
        if (!NOT_READY_YET.has(String((err as { code?: unknown }).code))) throw err;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return undefined;
  }

  private async statusText(): Promise<string> {
    const list = await this.deps.control.list();
    if (list.length === 0) return `No instances yet. "${this.keyword} <inbox_id> <account_id>" links one.`;
    const lines = list.map((i) => {
      const s = i.status;
      const last = s?.lastMessageAtMs ? new Date(s.lastMessageAtMs).toISOString().slice(0, 16).replace('T', ' ') : '—';
      return `• ${i.instanceKey}: inbox ${i.inboxId}, account ${i.accountId}, ${i.desired === 'stopped' ? 'stopped' : (s?.state ?? 'starting')}${s?.phone ? `, +${s.phone}` : ''}, worker ${i.slot ?? '—'}, last message ${last}`;
    });
    return [`Ponte: ${list.length} instance(s)`, ...lines].join('\n');
  }

  private async report(key: string, event: string, data: Record<string, unknown>): Promise<void> {
    const record = await this.deps.control.record(key);
    const notify = record?.notify;
    if (!notify) return;
    const say = (text: string) => this.reply(notify, text);
    if (event === 'qr' && typeof data.qr === 'string') {
      const png = await QRCode.toBuffer(data.qr, { type: 'png', width: 400, margin: 2 });
      await this.deps.chatwoot.createMessageWithAttachments(
        notify.accountId,
        notify.conversationId,
        {
          content: `QR code for ${key} (attempt ${String(data.n)} of ${String(data.max)}). Scan it in WhatsApp → Linked devices → Link a device.`,
          message_type: 'outgoing',
          private: notify.private === true,
          source_id: replySourceId(),
        },
        [{ fileName: `ponte-${key}-qr-${String(data.n)}.png`, contentType: 'image/png', data: png }],
      );
      return;
    }
    if (event === 'open') {
      const base = this.deps.config.server.publicUrl ?? 'https://<ponte-host>';
      await say(
        `✅ Linked: +${typeof data.phone === 'string' ? data.phone : '?'} is connected to inbox ${record.inboxId} (instance ${key}).\nSet the inbox webhook URL (Settings → Inboxes → ${record.inboxId} → Configuration) to:\n${base}/webhook/chatwoot/${key}?token=<WEBHOOK_SECRET>`,
      );
      return;
    }
    if (event === 'state' && data.state === 'qr_expired') {
      await say(`The QR codes for ${key} expired without a scan; the instance stopped. Send "${this.keyword} ${record.inboxId} ${record.accountId}" to try again.`);
      return;
    }
    if (event === 'alert' && typeof data.text === 'string') await say(`⚠️ ${key}: ${data.text}`);
  }
}

/** A fresh `PONTE:` source id for a reply Ponte writes itself. */
function replySourceId(): string {
  return `${PONTE_SOURCE_PREFIX}${randomBytes(8).toString('hex')}`;
}
