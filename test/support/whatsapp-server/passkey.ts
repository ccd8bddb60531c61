/**
 * WhatsApp's passkey demand at linking (the "Shortcake" / CRSC ceremony, asked
 * of some numbers since mid-2026): the notification the server sends a
 * registering companion instead of `pair-success`, the request it records,
 * and the error a link call rejects with.
 *
 * The stanza shape is an assumption from clients that handle it, not from a
 * capture of our own: `<notification from="s.whatsapp.net"
 * type="passkey_prologue_request" id t><passkey_request_options>{JSON}`, as
 * whatsmeow (`pair-passkey.go`, `parsePasskeyNotification`) and whatsapp-rust
 * parse it and Baileys PRs #2689/#2696 (not in rc14) describe it; the option
 * values follow what a whatsapp-rust user logged (oxidezap/whatsapp-rust#930).
 * The ceremony's later steps (the companion's `passkey_prologue` iq, then
 * `<notification type="crsc_continuation"><primary_ephemeral_identity>`,
 * `companion_nonce`, `encrypted_pairing_request`) are not simulated: rc14
 * never answers the first notification.
 */
import { randomBytes } from 'node:crypto';
import type { BinaryNode } from '@whiskeysockets/baileys';
import { node, unixSeconds } from './binary-node.js';
import type { ClientConnection } from './connection.js';

/** The WebAuthn request options a passkey notification carries (`PublicKeyCredentialRequestOptionsJSON`). */
export interface PasskeyRequestOptions {
  /** base64url, 32 random bytes. */
  challenge: string;
  /** Milliseconds, as WebAuthn names it. */
  timeout: number;
  rpId: string;
  allowCredentials: unknown[];
  userVerification: 'required' | 'preferred' | 'discouraged';
  extensions: Record<string, unknown>;
}

/** A passkey ceremony the server asked a registering companion for. */
export interface PasskeyRequest {
  connection: ClientConnection;
  /** The account's phone number (digits). */
  phone: string;
  /** How the phone was linking the companion. */
  via: 'qr' | 'pairing-code';
  /** The notification's id (the client's `<ack>` carries it back). */
  notificationId: string;
  requestOptions: PasskeyRequestOptions;
}

/** A link that WhatsApp did not complete because it asked for a passkey first. */
export class PasskeyRequiredError extends Error {
  readonly code = 'PASSKEY_REQUIRED';
  constructor(readonly request: PasskeyRequest) {
    super(`WhatsApp asked connection ${request.connection.id} for a passkey instead of linking it to ${request.phone}`);
  }
}

/** Fresh request options: a new challenge, relying party `whatsapp.com`, user verification required. */
export function newPasskeyRequestOptions(): PasskeyRequestOptions {
  return {
    challenge: randomBytes(32).toString('base64url'),
    timeout: 600_000,
    rpId: 'whatsapp.com',
    allowCredentials: [],
    userVerification: 'required',
    extensions: { uvm: true },
  };
}

/** `<notification type="passkey_prologue_request">` with the options as JSON bytes. */
export function passkeyPrologueRequest(id: string, options: PasskeyRequestOptions): BinaryNode {
  return node('notification', { from: 's.whatsapp.net', type: 'passkey_prologue_request', id, t: unixSeconds() }, [
    node('passkey_request_options', {}, Buffer.from(JSON.stringify(options))),
  ]);
}
