/**
 * What a session does when its socket closes, by Baileys' disconnect reason (pure).
 *
 * DESIGN.md, Decisions 2; `reference/baileys.md` §1.3. The session carries
 * the decision out.
 */
import { type PasskeyStep, PasskeyRequiredError } from './passkey.js';

export type CloseDecision =
  /** 515 after pairing, or a restart WhatsApp asked for: a new socket at once. */
  | { action: 'reconnect_now'; code: number; reason: string }
  /** Transient (428, 408, 500, 503, network): a new socket after backoff with jitter. */
  | { action: 'reconnect_backoff'; code: number; reason: string }
  /** 401: the phone unlinked this device. Clear the auth state and tell the operator. */
  | { action: 'logged_out'; code: number; reason: string }
  /** The QR was never scanned (408 "QR refs attempts ended"): stop until an operator asks again. */
  | { action: 'qr_expired'; code: number; reason: string }
  /** 440, 403, 405, 411: retrying cannot help or would fight another session. Stop and alert. */
  | { action: 'stop_alert'; code: number; reason: string }
  /**
   * WhatsApp asked for a passkey before linking (`passkey.ts`), and the driver
   * closed the socket itself: stop, keep no half-made link, tell the operator.
   * `code` is 0: WhatsApp sent no close code.
   */
  | { action: 'passkey_required'; code: 0; reason: string; step: PasskeyStep };

const NAMES: Record<number, string> = {
  401: 'loggedOut',
  403: 'forbidden',
  405: 'clientRejected',
  408: 'timedOut',
  411: 'multideviceMismatch',
  428: 'connectionClosed',
  440: 'connectionReplaced',
  500: 'badSession',
  503: 'unavailableService',
  515: 'restartRequired',
};

/** The status code Baileys puts on a close error (`Boom.output.statusCode`); 500 when there is none, as Baileys defaults. */
export function closeCode(error: unknown): number {
  const code = (error as { output?: { statusCode?: unknown } } | undefined)?.output?.statusCode;
  return typeof code === 'number' ? code : 500;
}

export function reasonName(code: number): string {
  return NAMES[code] ?? `status ${code}`;
}

export function decideOnClose(error: unknown): CloseDecision {
  if (error instanceof PasskeyRequiredError) return { action: 'passkey_required', code: 0, reason: `passkeyRequired: ${error.message}`, step: error.step };
  const code = closeCode(error);
  const message = error instanceof Error ? error.message : '';
  const reason = message ? `${reasonName(code)}: ${message}` : reasonName(code);
  switch (code) {
    case 515:
      return { action: 'reconnect_now', code, reason };
    case 401:
      return { action: 'logged_out', code, reason };
    case 408:
      return /QR refs attempts ended/i.test(message) ? { action: 'qr_expired', code, reason } : { action: 'reconnect_backoff', code, reason };
    case 440:
    case 403:
    case 405:
    case 411:
      return { action: 'stop_alert', code, reason };
    default:
      // 428, 500 (also Baileys' default for unclassified errors), 503 and anything unknown.
      return { action: 'reconnect_backoff', code, reason };
  }
}

/** A close error shaped like Baileys' Boom errors (`output.statusCode`), for the sandbox and tests. */
export function closeError(code: number, message = reasonName(code)): Error {
  return Object.assign(new Error(message), { isBoom: true, output: { statusCode: code, payload: { statusCode: code, error: reasonName(code), message } } });
}
