/** The states of an instance's WhatsApp session, as every process reports them (the state machine is `whatsapp/session.ts`). */

export const SESSION_STATES = ['stopped', 'waiting_lease', 'connecting', 'awaiting_scan', 'open', 'reconnecting', 'qr_expired', 'passkey_required', 'logged_out', 'halted'] as const;

export type SessionState = (typeof SESSION_STATES)[number];
