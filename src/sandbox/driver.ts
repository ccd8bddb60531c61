/** The sandbox driver as a worker loads it (`WHATSAPP_DRIVER=sandbox`): its socket factory and the control calls that play WhatsApp's part. */
import type { Redis } from 'ioredis';
import { boundedCache } from '../lib/bounded-cache.js';
import { type ControlHandler, ControlError } from '../cluster/ipc.js';
import { coerceError } from '../lib/errors.js';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from '../redis/keys.js';
import type { SocketFactory } from '../whatsapp/socket.js';
import { buildSandboxMessage, type SandboxPoll, UnknownPollError } from './control.js';
import { SandboxRecords } from './records.js';
import { SandboxCdn } from './cdn.js';
import { type SandboxSocket, sandboxSocketFactory } from './sandbox-socket.js';
import { SANDBOX_DISCONNECTS, SANDBOX_HISTORY_MAX, type SandboxDisconnect, SandboxHistoryContactSchema, SandboxHistoryMessageSchema, SandboxMessageSchema } from './schemas.js';
import { describeZodError } from '../lib/zod-errors.js';

/** The sandbox keeps the media its simulated senders sent, up to this many bytes (newest kept), in files. */
const SANDBOX_MEDIA_BYTES = 256 * 1024 * 1024;

/** The most messages one `sandbox.messages` call delivers. */
const SANDBOX_BATCH_MAX = 1000;

export interface SandboxDriver {
  factory: SocketFactory;
  /** `sandbox.*` control calls, by operation. */
  handlers: Record<string, ControlHandler>;
}

export function createSandboxDriver(deps: {
  qrIntervalMs: number;
  /** `SANDBOX_NOT_ON_WHATSAPP`: numbers (digits) the simulated WhatsApp does not know. */
  notOnWhatsApp?: readonly string[];
  redis: Redis;
  keys: RedisKeys;
  log: Logger;
  /** This host (`HOST_ID`), written in the connection log. */
  hostId: string;
  /** Resolves once the instance has stored every message it received (Redis, or the journal). */
  inboundIdle(instanceKey: string): Promise<void>;
  /** Resolves once the instance has kept every history set it received. */
  historyIdle(instanceKey: string): Promise<void>;
}): SandboxDriver {
  const records = new SandboxRecords(deps.redis, deps.keys);
  const sockets = new Map<string, SandboxSocket>();
  const media = new SandboxCdn(SANDBOX_MEDIA_BYTES);
  const groups = new Map<string, string>();
  const lids = boundedCache<string, string>(100_000);
  const polls = new Map<string, SandboxPoll>();
  /** Each instance's simulated reach-out lock: until when WhatsApp refuses sends to chats that did not write in 24 h. */
  const reachout = new Map<string, number>();
  const recordFailed = (instanceKey: string, what: string) => (err: unknown) => deps.log.warn({ err: coerceError(err), instanceId: instanceKey }, `could not record a sandbox ${what}`);

  const factory = sandboxSocketFactory({
    qrIntervalMs: deps.qrIntervalMs,
    notOnWhatsApp: new Set(deps.notOnWhatsApp ?? []),
    media,
    groups,
    lids,
    onSocket: (socket, instanceKey) => sockets.set(instanceKey, socket),
    reachoutLockedUntil: (instanceKey) => reachout.get(instanceKey),
    onSend: (entry, instanceKey) => void records.recordSend(instanceKey, entry).catch(recordFailed(instanceKey, 'send')),
    onConnection: (event, socket, instanceKey, id) =>
      void records.recordSocket(instanceKey, { event, host: deps.hostId, pid: process.pid, socket, ...(id ? { id } : {}), atMs: Date.now() }).catch(recordFailed(instanceKey, 'connection')),
    onRead: (ids, instanceKey) => void records.recordRead(instanceKey, ids).catch(recordFailed(instanceKey, 'read receipt')),
    // Ponte's own polls: a simulated customer can vote on them (`type: "vote"`, `targetId` from the outbox).
    onPoll: (pollWaId, poll) => polls.set(pollWaId, poll),
  });

  const socketOf = (instanceKey: string): SandboxSocket => {
    const s = sockets.get(instanceKey);
    if (!s || s.isClosed) throw new ControlError('not_connected', `instance ${instanceKey} has no open sandbox socket`);
    return s;
  };

  /** One simulated message from a control request (`at` names it in errors), its media and poll remembered; a history one carries its time. */
  const build = (args: unknown, at: string, kind: 'live' | 'history' = 'live') => {
    const parsed = (kind === 'history' ? SandboxHistoryMessageSchema : SandboxMessageSchema).safeParse(args);
    if (!parsed.success) throw new ControlError('bad_request', `${at}${describeZodError(parsed.error)}`);
    const timestamp = (parsed.data as { timestamp?: unknown }).timestamp;
    const timestampS = typeof timestamp === 'number' ? timestamp : undefined;
    let built: ReturnType<typeof buildSandboxMessage>;
    try {
      built = buildSandboxMessage(parsed.data, polls, timestampS);
    } catch (err) {
      if (err instanceof UnknownPollError) throw new ControlError('not_found', `${at}targetId: ${err.message}`);
      throw err;
    }
    const { message, media: sent, poll } = built;
    if (sent) media.put(sent.sha256, sent.data);
    if (poll) polls.set(poll.id, poll);
    if (parsed.data.group?.subject && !groups.has(parsed.data.group.jid)) groups.set(parsed.data.group.jid, parsed.data.group.subject);
    // A message that names both addresses reveals the pair, as WhatsApp's do.
    const k = message.key;
    for (const [a, b] of [[k.remoteJid, k.remoteJidAlt], [k.participant, k.participantAlt]]) {
      if (a?.endsWith('@lid') && b?.endsWith('@s.whatsapp.net')) lids.set(a, b);
      if (b?.endsWith('@lid') && a?.endsWith('@s.whatsapp.net')) lids.set(b, a);
    }
    return message;
  };

  const handlers: Record<string, ControlHandler> = {
    'sandbox.scan': (key, args) => {
      const socket = sockets.get(key);
      if (!socket?.awaitingScan) throw new ControlError('no_qr', `instance ${key} is not showing a QR`);
      socket.scan(String(args.phone));
      return Promise.resolve({ ok: true });
    },
    'sandbox.message': async (key, args) => {
      const message = build(args, '');
      socketOf(key).receive([message], 'notify');
      // Answered once the message is stored (Redis, or the journal), as WhatsApp's ack means it reached the number.
      await deps.inboundIdle(key);
      return { id: message.key.id };
    },
    // Several messages in one delivery, as WhatsApp sends a burst (and as benchmarks inject load).
    'sandbox.messages': async (key, args) => {
      const list = args.messages;
      if (!Array.isArray(list) || list.length === 0 || list.length > SANDBOX_BATCH_MAX) {
        throw new ControlError('bad_request', `messages: must be a list of 1 to ${SANDBOX_BATCH_MAX} messages`);
      }
      const socket = socketOf(key);
      const messages = list.map((m: unknown, i) => build(m, `messages[${i}].`));
      socket.receive(messages, 'notify');
      await deps.inboundIdle(key);
      return { ids: messages.map((m) => m.key.id) };
    },
    // A history set, as the phone sends it to a companion (after a link, and later).
    'sandbox.history': async (key, args) => {
      const list = args.messages ?? [];
      if (!Array.isArray(list) || list.length > SANDBOX_HISTORY_MAX) throw new ControlError('bad_request', `messages: must be a list of at most ${SANDBOX_HISTORY_MAX} messages`);
      const rawContacts = args.contacts ?? [];
      if (!Array.isArray(rawContacts)) throw new ControlError('bad_request', 'contacts: must be a list');
      const contacts = rawContacts.map((c: unknown, i) => {
        const parsed = SandboxHistoryContactSchema.safeParse(c);
        if (!parsed.success) throw new ControlError('bad_request', `contacts[${i}].${describeZodError(parsed.error)}`);
        return { id: parsed.data.jid, ...(parsed.data.name ? { name: parsed.data.name } : {}) };
      });
      const socket = socketOf(key);
      const messages = list.map((m: unknown, i) => build(m, `messages[${i}].`, 'history'));
      socket.history(messages, contacts);
      await deps.historyIdle(key);
      return { ids: messages.map((m) => m.key.id) };
    },
    'sandbox.receipt': (key, args) => {
      socketOf(key).receipt(String(args.id), args.status === 'read' ? 'read' : 'delivered');
      return Promise.resolve({ ok: true });
    },
    'sandbox.call': (key, args) => {
      const from = typeof args.from === 'string' ? args.from : '';
      const digits = from.split('@')[0]!.replace(/\D/g, '');
      const jid = from.includes('@') ? from : `${digits}@s.whatsapp.net`;
      const id = typeof args.id === 'string' && args.id ? args.id : `C${Date.now().toString(16).toUpperCase()}`;
      socketOf(key).call(jid, { id, video: args.video === true, status: args.status === 'offer' ? 'offer' : 'timeout' });
      return Promise.resolve({ id });
    },
    'sandbox.group': (key, args) => {
      socketOf(key).renameGroup(String(args.jid), String(args.subject));
      return Promise.resolve({ ok: true });
    },
    'sandbox.limits': (key, args) => {
      const answer: { ok: true; until?: string; cycleEnds?: string } = { ok: true };
      if (args.reachoutLockMs !== undefined) {
        const ms = Number(args.reachoutLockMs);
        if (!Number.isFinite(ms) || ms < 0) throw new ControlError('bad_request', 'reachoutLockMs: must be a number of ms, 0 or more');
        if (ms === 0) reachout.delete(key);
        else reachout.set(key, Date.now() + ms);
        if (ms > 0) answer.until = new Date(Date.now() + ms).toISOString();
      }
      if (args.newChatCap !== undefined) {
        const cap = args.newChatCap as { status: string; used?: number; quota?: number; cycleEndsInMs?: number };
        // WhatsApp gives the cycle's end in whole Unix seconds.
        const endsS = Math.floor((Date.now() + (cap.cycleEndsInMs ?? 24 * 3600_000)) / 1000);
        socketOf(key).announceNewChatCap({
          capping_status: cap.status,
          cycle_end_timestamp: String(endsS),
          ...(cap.used !== undefined ? { used_quota: cap.used } : {}),
          ...(cap.quota !== undefined ? { total_quota: cap.quota } : {}),
        });
        answer.cycleEnds = new Date(endsS * 1000).toISOString();
      }
      return Promise.resolve(answer);
    },
    'sandbox.disconnect': (key, args) => {
      const reason = String(args.reason) as SandboxDisconnect;
      if (!(reason in SANDBOX_DISCONNECTS)) throw new ControlError('bad_request', `reason: must be one of ${Object.keys(SANDBOX_DISCONNECTS).join(', ')}`);
      socketOf(key).disconnect(reason);
      return Promise.resolve({ ok: true });
    },
  };
  return { factory, handlers };
}
