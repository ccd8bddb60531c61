/** Whether a proactive message (the send API) may go to a chat: the one place an opt-out refuses it. */
import { ControlError } from '../cluster/ipc.js';
import type { OptOuts } from '../redis/send-safety.js';
import type { ProactiveCheck } from './api-send.js';

/**
 * Resolves when Ponte may start a proactive send to `jid`; rejects with a
 * `ControlError('opted_out', …)` (409 on the send API) for a customer who
 * opted out and has not written since. A send limiter never refuses here
 * (a held-back send is accepted and queued).
 */
export function proactiveCheck(optOuts: OptOuts, instanceKey: string): ProactiveCheck {
  return async (jid) => {
    if (await optOuts.isOptedOut(instanceKey, jid)) throw new ControlError('opted_out', 'the customer opted out of WhatsApp messages from this number; they can be written to again once they write');
  };
}
