import { randomBytes } from 'node:crypto';
import QRCode from 'qrcode';
import type { ChatwootClientLike } from '../chatwoot/types.js';
import { ChatwootNotFoundError } from '../chatwoot/errors.js';
import type { Config } from '../config/schema.js';
import type { InstanceRegistry } from '../instances/registry.js';
import { coerceError } from '../lib/errors.js';
import { instanceKey } from '../model/instance-key.js';
import type { Logger } from '../observability/logger.js';
import type { ControlPlane } from '../primary/control-plane.js';
import type { Supervisor } from '../primary/supervisor.js';
import { type CommandContext, PONTE_SOURCE_PREFIX } from './authorize.js';
import { parseCommand, usage } from './parse.js';

/**
 * Carries out operator commands and reports on instances in the conversation
 * that asked (its notify target): each QR as a PNG, the link, QR expiry,
 * alerts. An operator writing from WhatsApp through a Ponte inbox gets
 * outgoing replies (so they reach WhatsApp); an agent's command is answered
 * with private notes, so nothing reaches the customer of that conversation.
 * Every reply carries a `PONTE:` source id, so it is never read as a command.
 */
export class CommandService {
  /** Instances that showed a QR since they last opened. */
  private readonly pairing = new Set<string>();

  constructor(
    private readonly o: {
      config: Readonly<Config>;
      chatwoot: ChatwootClientLike;
      control: ControlPlane;
      registry: InstanceRegistry;
      supervisor: Supervisor;
      log: Logger;
    },
  ) {
    o.supervisor.on('event', (e) => {
      if (e.event === 'qr') this.pairing.add(e.instanceKey);
      const wasPairing = e.event === 'open' && this.pairing.delete(e.instanceKey);
      if (e.event === 'open' && !wasPairing) return; // a link is news once; reconnects are not
      void this.report(e.instanceKey, e.event, e.data).catch((err: unknown) => o.log.warn({ err: coerceError(err), instanceId: e.instanceKey }, 'could not report to the notify conversation'));
    });
  }

  private get keyword(): string {
    return this.o.config.webhook.commandKeyword;
  }

  private async reply(target: { accountId: number; conversationId: number; private?: boolean }, content: string): Promise<void> {
    await this.o.chatwoot.createMessage(target.accountId, target.conversationId, { content, message_type: 'outgoing', private: target.private === true, source_id: replySourceId() });
  }

  /** Acts on an authorized command message. */
  async handle(ctx: CommandContext): Promise<void> {
    const cmd = parseCommand(ctx.text, this.keyword, this.o.config.chatwoot.defaultAccountId);
    if (!cmd) return;
    const here = { accountId: ctx.accountId, conversationId: ctx.conversationId, private: ctx.replyPrivately };
    const say = (text: string) => this.reply(here, text);
    this.o.log.info({ command: cmd.kind, accountId: ctx.accountId, conversationId: ctx.conversationId, by: ctx.author.kind }, 'command');
    switch (cmd.kind) {
      case 'invalid':
        return say(`⚠️ ${cmd.reason}.\n\n${usage(this.keyword)}`);
      case 'help':
        return say(usage(this.keyword));
      case 'status':
        return say(await this.statusText());
      case 'stop':
      case 'logout': {
        const key = instanceKey({ accountId: ctx.accountId, inboxId: cmd.inboxId });
        if (!(await this.o.registry.get(key))) return say(`No instance for inbox ${cmd.inboxId} in account ${ctx.accountId}.`);
        if (cmd.kind === 'stop') {
          await this.o.control.stop(key);
          return say(`Instance ${key} stopped. The phone stays linked; "${this.keyword} ${cmd.inboxId} ${ctx.accountId}" starts it again.`);
        }
        await this.o.control.logout(key);
        return say(`Instance ${key} logged out: the phone is unlinked and its state deleted.`);
      }
      case 'link':
      case 'code': {
        const key = instanceKey({ accountId: cmd.accountId, inboxId: cmd.inboxId });
        try {
          const inbox = await this.o.chatwoot.getInbox(cmd.accountId, cmd.inboxId);
          if (inbox.channel_type !== 'Channel::Api') return say(`Inbox ${cmd.inboxId} ("${inbox.name}") is a ${inbox.channel_type} inbox; Ponte needs an API inbox.`);
        } catch (err) {
          if (err instanceof ChatwootNotFoundError) return say(`Inbox ${cmd.inboxId} does not exist in account ${cmd.accountId} (or this token cannot see it).`);
          throw err;
        }
        const existing = (await this.o.control.list()).find((i) => i.instanceKey === key);
        if (existing?.status?.state === 'open' && existing.desired === 'running') {
          return say(`Instance ${key} is already linked to +${existing.status.phone ?? '?'} and connected. "${this.keyword} logout ${cmd.inboxId}" unlinks it.`);
        }
        const notify = { accountId: ctx.accountId, conversationId: ctx.conversationId, ...(ctx.replyPrivately ? { private: true } : {}) };
        const { created } = await this.o.control.create({ accountId: cmd.accountId, inboxId: cmd.inboxId, notify });
        if (!created) await this.o.control.start(key);
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
        const r = (await this.o.control.call(key, 'pairing-code', { phone })) as { code?: string };
        if (r.code) return r.code;
      } catch {
        // Not awaiting a scan yet: the socket is still connecting.
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return undefined;
  }

  private async statusText(): Promise<string> {
    const list = await this.o.control.list();
    if (list.length === 0) return `No instances yet. "${this.keyword} <inbox_id> <account_id>" links one.`;
    const lines = list.map((i) => {
      const s = i.status;
      const last = s?.lastMessageAtMs ? new Date(s.lastMessageAtMs).toISOString().slice(0, 16).replace('T', ' ') : '—';
      return `• ${i.instanceKey}: inbox ${i.inboxId}, account ${i.accountId}, ${i.desired === 'stopped' ? 'stopped' : (s?.state ?? 'starting')}${s?.phone ? `, +${s.phone}` : ''}, worker ${i.slot ?? '—'}, last message ${last}`;
    });
    return [`Ponte: ${list.length} instance(s)`, ...lines].join('\n');
  }

  private async report(key: string, event: string, data: Record<string, unknown>): Promise<void> {
    const record = await this.o.registry.get(key);
    const notify = record?.notify;
    if (!notify) return;
    const say = (text: string) => this.reply(notify, text);
    if (event === 'qr' && typeof data.qr === 'string') {
      const png = await QRCode.toBuffer(data.qr, { type: 'png', width: 400, margin: 2 });
      await this.o.chatwoot.createMessageWithAttachments(
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
      const base = this.o.config.server.publicUrl ?? 'https://<ponte-host>';
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
