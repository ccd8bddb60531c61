/**
 * What happens to the stanzas a logged-in companion sends to other users:
 * each `<message>` is decrypted by the simulated device every `<to>` (or
 * the stanza itself) names, a peer's phone or the account's own primary,
 * and each `<receipt>` is handed to the peer (or own account) it addresses.
 */
import type { BinaryNode } from '@whiskeysockets/baileys';
import type { CompanionDevice } from './account.js';
import { bytesOf, child, children } from './binary-node.js';
import type { Directory } from './directory.js';
import type { EncType } from './signal-device.js';

type MessageMeta = { id: string; to: string; from: string; stanzaType: string | undefined; accountPhone: string };

async function decryptFor(directory: Directory, jid: string | undefined, enc: BinaryNode | undefined, meta: MessageMeta): Promise<void> {
  const user = directory.lookup(jid);
  const type = enc?.attrs.type;
  const ciphertext = bytesOf(enc);
  // Group sender-key messages and the account's other companions are not simulated.
  if (!user || user.device !== 0 || (type !== 'pkmsg' && type !== 'msg') || !ciphertext) return;
  const encType: EncType = type;
  if (user.kind === 'peer') {
    const message = await user.peer.device.decrypt(meta.from, encType, ciphertext);
    user.peer.acceptMessage({ ...meta, message, encType });
    return;
  }
  const { account } = user;
  const message = await account.primary.decrypt(meta.from, encType, ciphertext);
  const dsm = message.deviceSentMessage;
  const copy = account.primaryInbox.filter((m) => m.id === meta.id).length;
  account.primaryInbox.push({ ...meta, message: dsm?.message ?? message, destinationJid: dsm?.destinationJid ?? undefined, encType, copy });
}

/**
 * Decrypts a companion's `<message>` for every simulated recipient device:
 * `<participants><to jid>…` for a normal send, a bare `<enc>` for a retry
 * re-send to one device. Returns the errors (one per device that failed).
 */
export async function routeClientMessage(directory: Directory, sender: CompanionDevice, stanza: BinaryNode): Promise<unknown[]> {
  const { id, to } = stanza.attrs;
  if (!id || !to) return [];
  const participants = child(stanza, 'participants');
  const targets = participants
    ? children(participants, 'to').map((t) => ({ jid: t.attrs.jid, enc: child(t, 'enc') }))
    : [{ jid: to, enc: child(stanza, 'enc') }];
  const meta: MessageMeta = { id, to, from: sender.lidJid, stanzaType: stanza.attrs.type, accountPhone: sender.account.phone };
  const errors: unknown[] = [];
  for (const { jid, enc } of targets) {
    try {
      await decryptFor(directory, jid, enc, meta);
    } catch (error) {
      errors.push(error);
    }
  }
  return errors;
}

/**
 * Hands a companion's `<receipt>` (delivery, read, retry, …) to the peer it
 * addresses, or to its own account for receipts of the phone's peer messages
 * (`peer_msg`, `hist_sync`).
 */
export function routeClientReceipt(directory: Directory, sender: CompanionDevice, stanza: BinaryNode): void {
  const { id, to, type } = stanza.attrs;
  const user = directory.lookup(to);
  if (!user || !id || !to) return;
  const ids = [id, ...children(child(stanza, 'list'), 'item').map((i) => i.attrs.id).filter((x): x is string => Boolean(x))];
  const receipt = { ids, type: type ?? 'delivery', to, from: sender.lidJid };
  if (user.kind === 'peer') user.peer.receipts.push(receipt);
  else if (user.account === sender.account) user.account.receipts.push(receipt);
}
