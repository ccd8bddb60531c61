/**
 * The sandbox control API's contracts, free of any WhatsApp library.
 *
 * Request bodies, simulated disconnects and the outbox entries. The primary validates requests with these before a worker acts on them.
 */
import { z } from 'zod';

const MESSAGE_TYPES = ['text', 'image', 'video', 'audio', 'ptt', 'document', 'sticker', 'location', 'contact', 'poll', 'vote', 'reaction', 'edit', 'revoke'] as const;

/** The fields of a simulated message. */
const MessageFields = z.object({
  from: z.string().regex(/^\+?[\d\s()-]{6,24}$|^\d{5,20}(:\d{1,3})?@(s\.whatsapp\.net|lid)$/, 'must be a phone number with country code or a JID (…@s.whatsapp.net, …@lid)'),
  pushName: z.string().optional(),
  id: z.string().regex(/^[A-Za-z0-9]{1,64}$/, 'must be letters and digits').optional(),
  fromMe: z.boolean().optional(),
  lid: z.union([z.string(), z.boolean()]).optional(),
  group: z.object({ jid: z.string().regex(/@g\.us$/, 'must end with @g.us'), subject: z.string().optional() }).optional(),
  type: z.enum(MESSAGE_TYPES).default('text'),
  text: z.string().optional(),
  caption: z.string().optional(),
  media: z.string().optional(),
  mimetype: z.string().optional(),
  fileName: z.string().optional(),
  quotedId: z.string().optional(),
  targetId: z.string().optional(),
  emoji: z.string().optional(),
  latitude: z.number().min(-90).max(90).optional(),
  longitude: z.number().min(-180).max(180).optional(),
  vcard: z.string().optional(),
  options: z.array(z.string()).max(12).optional(),
});

/** What each message type needs besides the sender. */
function refineMessage(b: z.infer<typeof MessageFields>, ctx: z.RefinementCtx): void {
  const need = (field: keyof typeof b, why: string) => {
    if (b[field] === undefined || b[field] === '') ctx.addIssue({ code: 'custom', path: [field], message: why });
  };
  switch (b.type) {
    case 'text':
      need('text', `is required for type ${b.type}`);
      break;
    case 'image':
    case 'video':
    case 'audio':
    case 'ptt':
    case 'document':
    case 'sticker':
      need('media', `is required for type ${b.type} (base64)`);
      if (b.media !== undefined && !/^[A-Za-z0-9+/=\s]*$/.test(b.media)) ctx.addIssue({ code: 'custom', path: ['media'], message: 'must be base64' });
      break;
    case 'location':
      need('latitude', 'is required for type location');
      need('longitude', 'is required for type location');
      break;
    case 'contact':
      need('vcard', 'is required for type contact');
      break;
    case 'poll':
      need('text', 'is required for type poll (the question)');
      if ((b.options?.length ?? 0) < 2) ctx.addIssue({ code: 'custom', path: ['options'], message: 'needs at least 2 options for type poll' });
      break;
    case 'vote':
      need('targetId', 'is required for type vote (the poll id)');
      if (b.options === undefined) ctx.addIssue({ code: 'custom', path: ['options'], message: 'is required for type vote (the chosen options, [] removes the vote)' });
      break;
    case 'reaction':
      need('targetId', 'is required for type reaction');
      if (b.emoji === undefined) ctx.addIssue({ code: 'custom', path: ['emoji'], message: 'is required for type reaction ("" removes it)' });
      break;
    case 'edit':
      need('targetId', 'is required for type edit');
      need('text', 'is required for type edit');
      break;
    case 'revoke':
      need('targetId', 'is required for type revoke');
      break;
  }
}

/** `POST /sandbox/instances/:instance/messages`: a message arriving from WhatsApp. */
export const SandboxMessageSchema = MessageFields.superRefine(refineMessage);

export type SandboxMessageBody = z.infer<typeof SandboxMessageSchema>;

/** The most messages one `POST /sandbox/instances/:instance/history` delivers. */
export const SANDBOX_HISTORY_MAX = 5000;

/** A message of a history set: as a live one, with the time it was written (Unix seconds; now when absent). */
export const SandboxHistoryMessageSchema = MessageFields.extend({ timestamp: z.number().int().min(0).max(4_102_444_800).optional() }).superRefine(refineMessage);

export type SandboxHistoryMessageBody = z.infer<typeof SandboxHistoryMessageSchema>;

/** A contact of a history set: a JID and the name the account saved for it. */
export const SandboxHistoryContactSchema = z.object({
  jid: z.string().regex(/^\d{5,20}@(s\.whatsapp\.net|lid)$|@g\.us$/, 'must be a JID (…@s.whatsapp.net, …@lid, …@g.us)'),
  name: z.string().max(200).optional(),
});

/** One message Ponte sent through a sandbox account, as the outbox shows it. */
export interface OutboxEntry {
  id: string;
  to: string;
  type: string;
  text?: string;
  caption?: string;
  fileName?: string;
  mimetype?: string;
  mediaSha256?: string;
  quotedId?: string;
  /** For a poll (`text` is its question): the options, in order. */
  options?: string[];
  /** Set when Ponte deleted (revoked) it afterwards. */
  deleted?: boolean;
  /** For a delete or an edit: the message it applies to. */
  targetId?: string;
  atMs: number;
}

/**
 * One line of the sandbox's connection log: a socket of `host` (process
 * `pid`) opened as the linked number, sent message `id`, or closed. The
 * simulated WhatsApp sees every socket of an instance, as the real one does:
 * two open at once is what makes WhatsApp close one with 440.
 */
export interface SocketLogEntry {
  event: 'open' | 'send' | 'close';
  host: string;
  pid: number;
  /** The socket, unique per process. */
  socket: number;
  id?: string;
  atMs: number;
}

/** Disconnect reasons the control API can simulate, with their status codes. */
export const SANDBOX_DISCONNECTS = {
  restartRequired: 515,
  connectionClosed: 428,
  connectionLost: 408,
  loggedOut: 401,
  connectionReplaced: 440,
  badSession: 500,
  forbidden: 403,
} as const;
export type SandboxDisconnect = keyof typeof SANDBOX_DISCONNECTS;
