/** Whether a proactive message (the send API) may go to a chat: the one place an opt-out refuses it. */
import type { ProactiveCheck } from './api-send.js';

/**
 * Resolves when Ponte may start a proactive send to `jid`; rejects with a
 * `ControlError('opted_out', …)` (409 on the send API) for a customer who
 * opted out. No opt-out is recorded yet, so every chat may be contacted; a
 * send limiter never refuses here (a held-back send is accepted and queued).
 */
export const mayContactProactively: ProactiveCheck = (_jid) => Promise.resolve();
