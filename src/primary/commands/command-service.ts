/** Carries out operator commands (`erga …`) and reports QR codes, links and alerts to the operator. */
import { randomBytes } from 'node:crypto';
import QRCode from 'qrcode';
import type { ChatwootClientLike } from '../../chatwoot/types.js';
import { ChatwootError, ChatwootNotFoundError } from '../../chatwoot/errors.js';
import type { Config } from '../../config/schema.js';
import { coerceError } from '../../lib/errors.js';
import { instanceKey, parseInstanceKey } from '../../model/instance-key.js';
import type { Logger } from '../../observability/logger.js';
import { ControlError, type WorkerEvent, type WorkerOp } from '../../cluster/ipc.js';
import type { ContactsRunStatus, InstanceRecord, InstanceView } from '../../model/instance.js';
import { type ImportNotify, type ImportReport, MAX_IMPORT_DAYS } from '../../model/history-import.js';
import { PONTE_SOURCE_PREFIX } from '../../model/source-id.js';
import type { CommandContext } from './authorize.js';
import type { NewInbox, NewInboxRequest } from './inbox-provisioner.js';
import { PUBLIC_URL_NEEDED } from './inbox-provisioner.js';
import { parseCommand, usage } from './parse.js';
import type { LinkTarget, PendingLinks } from './pending-links.js';

/**
 * Carries out operator commands and reports on instances in the conversation
 * that asked (its notify target): each QR as a PNG, the link, QR expiry, a
 * passkey WhatsApp asked for, alerts. A link is announced once, after QR codes were shown (a reconnect
 * is no news); which instances are linking is kept in Redis
 * ({@link PendingLinks}), so a primary restart in the middle loses nothing.
 * Each instance's events are handled in the order they came. An operator
 * writing from WhatsApp through a Ponte inbox gets outgoing replies (so they
 * reach WhatsApp); an agent's command is answered with private notes, so
 * nothing reaches the customer of that conversation. Every reply carries a
 * `PONTE:` source id, so it is never read as a command.
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
  /** Each instance's events in arrival order: a QR's record is written before the open that follows it is read. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly deps: {
      config: Readonly<Config>;
      chatwoot: ChatwootClientLike;
      control: CommandControlLike;
      /** The workers' instance events (QR, open, alert, state). */
      events: { on(event: 'event', listener: (e: WorkerEvent) => void): unknown };
      /** Links under way (Redis). */
      links: Pick<PendingLinks, 'mark' | 'take'>;
      /** Creates the inbox of `erga new` (`InboxProvisioner`). */
      inboxes: { provision(request: NewInboxRequest): Promise<NewInbox> };
      log: Logger;
    },
  ) {
    deps.events.on('event', (e) => {
      const previous = this.chains.get(e.instanceKey) ?? Promise.resolve();
      const next = previous
        .then(() => this.onEvent(e))
        .catch((err: unknown) => deps.log.warn({ err: coerceError(err), instanceId: e.instanceKey }, 'could not report to the notify conversation'))
        .finally(() => {
          if (this.chains.get(e.instanceKey) === next) this.chains.delete(e.instanceKey);
        });
      this.chains.set(e.instanceKey, next);
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
      case 'import':
        return this.importHistory(ctx, cmd.inboxId, cmd.days, say);
      case 'contacts':
        return this.contacts(ctx, cmd.inboxId, say);
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
        await this.startLink(ctx, cmd.accountId, cmd.inboxId);
        if (cmd.kind === 'code') {
          await say(`Starting ${key}; asking WhatsApp for a pairing code for +${cmd.phone}…`);
          const code = await this.waitForPairingCode(key, cmd.phone);
          return say(code ? `Pairing code for +${cmd.phone}: ${code}\nOn the phone: Linked devices → Link a device → Link with phone number instead.` : `Could not get a pairing code for ${key}; try "${this.keyword} ${cmd.inboxId} ${cmd.accountId}" for a QR.`);
        }
        return say(`Starting ${key}. The QR code follows; scan it in WhatsApp → Linked devices → Link a device.`);
      }
      case 'new': {
        if (!this.deps.config.server.publicUrl) return say(`⚠️ ${PUBLIC_URL_NEEDED}`);
        let made: NewInbox;
        try {
          made = await this.deps.inboxes.provision({
            accountId: cmd.accountId,
            name: cmd.name,
            // The same command message, run again after a crash or an outage, reuses the inbox it created.
            ref: `cmd-${ctx.accountId}-${ctx.messageId}`,
            ...(ctx.author.kind === 'agent' && ctx.author.userId !== undefined ? { memberUserId: ctx.author.userId } : {}),
          });
        } catch (err) {
          if (err instanceof ControlError) return say(`⚠️ ${err.message}`);
          throw err;
        }
        const member = ctx.author.kind === 'agent' && ctx.author.userId !== undefined ? ctx.author.email : "the access token's user";
        await say(
          `Inbox "${made.name}" (id ${made.inboxId}) is ready in account ${made.accountId}: its webhook points at Ponte${made.secretKnown ? ' (signed with its own secret, which Ponte verifies)' : ''}, and ${member} is a member.\nStarting ${made.instanceKey}. The QR code follows; scan it in WhatsApp → Linked devices → Link a device.`,
        );
        await this.startLink(ctx, made.accountId, made.inboxId);
        return;
      }
    }
  }

  /**
   * `import <inbox> [days]`: the worker imports what Ponte keeps of the
   * window and asks the phone for older history; the import's start, each
   * quarter and its end are posted here (by {@link onEvent}).
   */
  private async importHistory(ctx: CommandContext, inboxId: number, requested: number | undefined, say: (text: string) => Promise<void>): Promise<void> {
    const key = instanceKey({ accountId: ctx.accountId, inboxId });
    const record = await this.deps.control.record(key);
    if (!record) return say(`No instance for inbox ${inboxId} in account ${ctx.accountId}.`);
    if (record.desired === 'stopped') return say(`Instance ${key} is stopped; "${this.keyword} ${inboxId} ${ctx.accountId}" starts it, then import.`);
    const days = requested ?? this.deps.config.inbound.historyImportDays;
    if (days === 0) return say(`How many days? "${this.keyword} import ${inboxId} <days>", from 1 to ${MAX_IMPORT_DAYS} (HISTORY_IMPORT_DAYS is 0).`);
    const notify = { accountId: ctx.accountId, conversationId: ctx.conversationId, ...(ctx.replyPrivately ? { private: true } : {}) };
    const r = (await this.deps.control.call(key, 'import', { days, notify })) as ImportRequestAnswer;
    const asked = r.asked > 0 ? ` Asked the phone for older messages of ${r.asked} chat(s); they are imported as they come.` : '';
    if (r.started) {
      if (asked) await say(asked.trim());
      return;
    }
    if (r.running) return say(`An import of ${key} is already running; it now covers the last ${days} days (${r.messages} more message(s)); progress is posted here.${asked}`);
    if (asked) return say(`Nothing of the last ${days} days is waiting to be imported for ${key}.${asked}`);
    return say(`Nothing to import for ${key}: WhatsApp has sent no history of the last ${days} days that is not imported yet (the phone sends it right after a link).`);
  }

  /**
   * `contacts <inbox>`: the worker names the contacts WhatsApp knows for the
   * number and creates the missing ones; the counts are posted here at the
   * end (by {@link onEvent}).
   */
  private async contacts(ctx: CommandContext, inboxId: number, say: (text: string) => Promise<void>): Promise<void> {
    const key = instanceKey({ accountId: ctx.accountId, inboxId });
    const record = await this.deps.control.record(key);
    if (!record) return say(`No instance for inbox ${inboxId} in account ${ctx.accountId}.`);
    if (record.desired === 'stopped') return say(`Instance ${key} is stopped; "${this.keyword} ${inboxId} ${ctx.accountId}" starts it, then ask again.`);
    const notify = { accountId: ctx.accountId, conversationId: ctx.conversationId, ...(ctx.replyPrivately ? { private: true } : {}) };
    const r = (await this.deps.control.call(key, 'contacts', { notify })) as { started: boolean; contacts: number };
    if (!r.started) return say(`A contacts run of ${key} is already under way; its counts show in the status.`);
    if (r.contacts === 0) return say(`WhatsApp has sent no contacts for ${key} yet (the phone sends them with the history, right after a link).`);
    return say(`👥 Contacts of ${key}: ${r.contacts} known to WhatsApp; naming them and creating the missing ones. The counts follow here.`);
  }

  /** Creates (or starts again) the instance of an inbox, its QR codes and link reported in the command's conversation. */
  private async startLink(ctx: CommandContext, accountId: number, inboxId: number): Promise<void> {
    const notify = { accountId: ctx.accountId, conversationId: ctx.conversationId, ...(ctx.replyPrivately ? { private: true } : {}) };
    const { created } = await this.deps.control.create({ accountId, inboxId, notify });
    if (!created) await this.deps.control.start(instanceKey({ accountId, inboxId }));
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
      return `• ${i.instanceKey}: inbox ${i.inboxId}, account ${i.accountId}, ${i.desired === 'stopped' ? 'stopped' : (s?.state ?? 'starting')}${s?.phone ? `, +${s.phone}` : ''}, ${i.host ? `host ${i.host}, ` : ''}worker ${i.slot ?? '—'}, last message ${last}`;
    });
    return [`Ponte: ${list.length} instance(s)`, ...lines].join('\n');
  }

  private async onEvent(e: WorkerEvent): Promise<void> {
    const key = e.instanceKey;
    if (e.event === 'open') {
      // A link is news once; reconnects are not.
      const target = await this.deps.links.take(key);
      if (target) await this.announceLink(key, target, typeof e.data.phone === 'string' ? e.data.phone : undefined);
      return;
    }
    const record = await this.deps.control.record(key);
    if (e.event === 'contacts') {
      const report = parseContactsReport(e.data);
      if (report?.notify) await this.reply(report.notify, contactsText(key, report.status));
      return;
    }
    if (e.event === 'import') {
      const report = parseImportReport(e.data);
      const target = report?.notify ?? record?.notify;
      if (report && target) await this.reply(target, importText(key, report));
      return;
    }
    const notify = record?.notify;
    if (!notify) return;
    const say = (text: string) => this.reply(notify, text);
    const data = e.data;
    if (e.event === 'qr' && typeof data.qr === 'string') {
      await this.deps.links.mark(key, notify);
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
    if (e.event === 'state' && data.state === 'qr_expired') {
      await say(`The QR codes for ${key} expired without a scan; the instance stopped. Send "${this.keyword} ${record.inboxId} ${record.accountId}" to try again.`);
      return;
    }
    if (e.event === 'state' && data.state === 'passkey_required') {
      await say(passkeyRequiredText(key, `${this.keyword} ${record.inboxId} ${record.accountId}`));
      return;
    }
    if (e.event === 'alert' && typeof data.text === 'string') await say(`⚠️ ${key}: ${data.text}`);
  }

  /** The link confirmation, with the webhook URL to set only when the inbox does not point at Ponte already (as `erga new` sets it). */
  private async announceLink(key: string, target: LinkTarget, phone: string | undefined): Promise<void> {
    const ref = parseInstanceKey(key);
    if (!ref) return;
    const linked = `✅ Linked: +${phone ?? '?'} is connected to inbox ${ref.inboxId} (instance ${key}).`;
    if (await this.webhookPointsHere(ref.accountId, ref.inboxId, key)) {
      await this.reply(target, `${linked} Its messages arrive in that inbox, and agent replies there go out on WhatsApp.`);
      return;
    }
    const base = this.deps.config.server.publicUrl ?? 'https://<ponte-host>';
    await this.reply(target, `${linked}\nSet the inbox webhook URL (Settings → Inboxes → ${ref.inboxId} → Configuration) to:\n${base}/webhook/chatwoot/${key}?token=<WEBHOOK_SECRET>`);
  }

  /** Whether the inbox's webhook URL is Ponte's for this instance, with the right token. */
  private async webhookPointsHere(accountId: number, inboxId: number, key: string): Promise<boolean> {
    let url: string | null | undefined;
    try {
      url = (await this.deps.chatwoot.getInbox(accountId, inboxId)).webhook_url;
    } catch (err) {
      // Chatwoot cannot tell now: the confirmation then says what to set, which is harmless when it is set already.
      if (err instanceof ChatwootError) return false;
      throw err;
    }
    return pointsAtInstance(url, key, this.deps.config.webhook.secret);
  }
}

/** `…/webhook/chatwoot/<instance>?token=<WEBHOOK_SECRET>`, whatever the host (Chatwoot may reach Ponte by an internal name). */
export function pointsAtInstance(url: string | null | undefined, key: string, webhookSecret: string): boolean {
  if (!url || !URL.canParse(url)) return false;
  const u = new URL(url);
  return u.pathname.endsWith(`/webhook/chatwoot/${key}`) && u.searchParams.get('token') === webhookSecret;
}

/** What the worker answers an import request (`HistoryImport.request`). */
interface ImportRequestAnswer {
  running: boolean;
  started: boolean;
  messages: number;
  asked: number;
}

/** An import's progress line: the counts, at its start, each quarter and its end. */
export function importText(key: string, r: ImportReport): string {
  const { chats, messages, created, skipped, errors } = r.status;
  const counts = `created ${created}, skipped ${skipped}, errors ${errors}`;
  switch (r.phase) {
    case 'start':
      return `📥 History import of ${key} started: ${messages} message(s) in ${chats} chat(s) from the last ${r.days} days; ${counts}.`;
    case 'progress':
      return `History import of ${key}: ${r.percent} % (${created + skipped + errors} of ${messages} messages); ${counts}.`;
    case 'end':
      return `✅ History import of ${key} done: ${messages} message(s) in ${chats} chat(s); ${counts}. Each shows its original time first; skipped ones were in Chatwoot already.`;
  }
}

/** An import report from a worker event, when it has the expected shape. */
export function parseImportReport(data: Record<string, unknown>): ImportReport | undefined {
  const phase = data.phase;
  if (phase !== 'start' && phase !== 'progress' && phase !== 'end') return undefined;
  const st = data.status as Record<string, unknown> | undefined;
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  if (!st || typeof st !== 'object') return undefined;
  const n = data.notify as Record<string, unknown> | undefined;
  const notify =
    n && typeof n.accountId === 'number' && typeof n.conversationId === 'number' ? { accountId: n.accountId, conversationId: n.conversationId, ...(n.private === true ? { private: true } : {}) } : undefined;
  return {
    phase,
    status: { state: st.state === 'done' ? 'done' : 'running', chats: num(st.chats), messages: num(st.messages), created: num(st.created), skipped: num(st.skipped), errors: num(st.errors) },
    days: num(data.days),
    percent: num(data.percent),
    ...(notify ? { notify } : {}),
  };
}

/** A contacts run's counts, as posted where `erga contacts` was written. */
export function contactsText(key: string, s: ContactsRunStatus): string {
  const counts = `created ${s.created}, updated ${s.updated}, skipped ${s.skipped}, errors ${s.errors}`;
  if (s.state !== 'done') return `Contacts of ${key} stopped before the end: ${counts}. Asking again finishes it.`;
  return `✅ Contacts of ${key} done: ${s.contacts} contact(s); ${counts}. Skipped ones had WhatsApp's name already or a name an agent gave them.`;
}

/** A contacts report from a worker event, when it has the expected shape. */
export function parseContactsReport(data: Record<string, unknown>): { status: ContactsRunStatus; notify?: ImportNotify } | undefined {
  const st = data.status as Record<string, unknown> | undefined;
  if (!st || typeof st !== 'object') return undefined;
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const n = data.notify as Record<string, unknown> | undefined;
  const notify =
    n && typeof n.accountId === 'number' && typeof n.conversationId === 'number' ? { accountId: n.accountId, conversationId: n.conversationId, ...(n.private === true ? { private: true } : {}) } : undefined;
  const state = st.state === 'done' || st.state === 'stopped' ? st.state : 'running';
  return {
    status: { state, contacts: num(st.contacts), created: num(st.created), updated: num(st.updated), skipped: num(st.skipped), errors: num(st.errors) },
    ...(notify ? { notify } : {}),
  };
}

/** What the operator is told when WhatsApp asked for a passkey while linking `key` (`retry`: the command that starts it again). */
export function passkeyRequiredText(key: string, retry: string): string {
  return (
    `⚠️ ${key}: WhatsApp asked this number for a passkey before linking a new device, a check Ponte cannot answer yet, ` +
    `so the link stopped: nothing was linked and no more QR codes will come. ` +
    `On the phone, look at Settings → Account → Passkeys; try linking again later, or link a number whose account does not ask for a passkey. ` +
    `Then send "${retry}" to try again.`
  );
}

/** A fresh `PONTE:` source id for a reply Ponte writes itself. */
function replySourceId(): string {
  return `${PONTE_SOURCE_PREFIX}${randomBytes(8).toString('hex')}`;
}
