/** Records the loopback server keeps about traffic from the linked account, shared by the server and the simulated devices. */
import type { proto } from '@whiskeysockets/baileys';
import type { EncType } from './signal-device.js';

/** A message the linked account sent, as one simulated device decrypted it. */
export interface ReceivedMessage {
  /** The message id (the stanza's `id`). */
  id: string;
  /** What the linked account addressed the stanza to (`to`): a PN or LID jid. */
  to: string;
  /** The sending device: the linked companion's LID device jid. */
  from: string;
  /** The decrypted content. For the account's own phone, the `deviceSentMessage` wrapper is removed. */
  message: proto.IMessage;
  /** For the account's own phone: the chat the message was sent to (`deviceSentMessage.destinationJid`). */
  destinationJid?: string;
  encType: EncType;
  /** The stanza's `type` attribute: `text`, `media`, `reaction`, … */
  stanzaType: string | undefined;
  /** How many copies of this id this device got before (0 the first time, 1 for a retry re-send). */
  copy: number;
  /** The linked account's phone number (digits). */
  accountPhone: string;
}

/** A receipt the linked account sent to a peer (delivery, read, retry, …). */
export interface AccountReceipt {
  ids: string[];
  /** The receipt's `type`; `delivery` when it has none. */
  type: string;
  /** The jid it was addressed to. */
  to: string;
  /** The linked companion that sent it (LID device jid). */
  from: string;
}

/** Who a new account or peer is. */
export interface IdentityOptions {
  /** Phone number, digits only (a leading `+` is dropped). */
  phone: string;
  /** LID user part; derived from the phone number when absent. */
  lid?: string;
  /** A peer's profile name (the `notify` of its messages); unused for accounts. */
  pushName?: string;
}
