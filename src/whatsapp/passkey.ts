/**
 * WhatsApp's passkey demand at linking, as the driver recognises it (pure): which stanzas are one, and the close error a socket ends with.
 *
 * Since mid-2026 WhatsApp asks some numbers for a passkey (a WebAuthn
 * assertion, the "Shortcake" / CRSC ceremony) before it links a new device:
 * during linking, by QR or by pairing code, the server sends
 * `<notification type="passkey_prologue_request">` where `pair-success` would
 * come, and later in the ceremony `crsc_continuation`. Baileys rc14 does not
 * implement the ceremony; it acks the notification and waits, and the link
 * never completes. Ponte does not implement it either (a wrong answer could
 * put the number at risk): it recognises the demand, closes the socket and
 * tells the operator.
 */
import { AppError } from '../lib/errors.js';

/** The stanza names of the passkey ceremony a linking companion may receive. */
export const PASSKEY_STEPS = ['passkey_prologue_request', 'crsc_continuation'] as const;
export type PasskeyStep = (typeof PASSKEY_STEPS)[number];

/** The parts of a Baileys `BinaryNode` the classification reads. */
export interface StanzaLike {
  tag: string;
  attrs: Record<string, string | undefined>;
  content?: unknown;
}

/** The stanza kinds a passkey step can come as. */
const CARRIERS = new Set(['notification', 'iq', 'ib']);

function isStep(name: string | undefined): name is PasskeyStep {
  return name !== undefined && (PASSKEY_STEPS as readonly string[]).includes(name);
}

/**
 * The passkey step a stanza is, if any: a `notification`, `iq` or `ib` whose
 * `type` names one, or that carries a child tagged with one.
 */
export function passkeyStepOf(stanza: StanzaLike): PasskeyStep | undefined {
  if (!CARRIERS.has(stanza.tag)) return undefined;
  if (isStep(stanza.attrs.type)) return stanza.attrs.type;
  if (!Array.isArray(stanza.content)) return undefined;
  for (const child of stanza.content as unknown[]) {
    const tag = (child as { tag?: unknown } | null)?.tag;
    if (typeof tag === 'string' && isStep(tag)) return tag;
  }
  return undefined;
}

/** The socket was closed because WhatsApp asked for a passkey before linking (its close error). */
export class PasskeyRequiredError extends AppError {
  readonly code = 'WA_PASSKEY_REQUIRED';
  constructor(readonly step: PasskeyStep) {
    super(`WhatsApp asked for a passkey before linking (${step})`);
  }
}
