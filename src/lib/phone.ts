/**
 * Phone numbers as WhatsApp and Chatwoot spell them.
 *
 * WhatsApp addresses a person by the digits of their number (`<digits>@s.whatsapp.net`);
 * Chatwoot stores E.164 (`+<digits>`). Brazilian mobiles exist in two forms:
 * since 2012-2016 they carry a ninth digit (`55 DD 9XXXX-XXXX`, 13 digits), but
 * accounts registered before that are still addressed by WhatsApp without it
 * (`55 DD XXXX-XXXX`, 12 digits). Both forms are one person; Ponte's canonical
 * form is the 13-digit one, the number a Brazilian would dial today.
 */

/** The digits of a JID's user part or of a phone number: `5511…@s.whatsapp.net:3` → `5511…`. */
export function digitsOf(jidOrPhone: string): string {
  const user = jidOrPhone.split('@')[0] ?? '';
  return (user.split(':')[0] ?? '').replace(/\D/g, '');
}

/** `+<digits>` when the digits can be an E.164 number (Chatwoot's `/\+[1-9]\d{1,14}\z/`), else `undefined`. */
export function toE164(digits: string): string | undefined {
  return /^[1-9]\d{1,14}$/.test(digits) ? `+${digits}` : undefined;
}

// 55 + area code (two digits, neither 0) + subscriber number.
const BR_MOBILE_WITH_NINE = /^55([1-9][1-9])9([6-9]\d{7})$/;
const BR_MOBILE_WITHOUT_NINE = /^55([1-9][1-9])([6-9]\d{7})$/;

/**
 * The canonical form of a number: Brazilian mobiles gain their ninth digit
 * (`552198765432` → `5521998765432`); everything else (landlines, other
 * countries) is returned unchanged.
 */
export function canonicalBrazilian(digits: string): string {
  const m = BR_MOBILE_WITHOUT_NINE.exec(digits);
  return m ? `55${m[1]}9${m[2]}` : digits;
}

/**
 * Every form under which WhatsApp or Chatwoot may know a number, canonical
 * first: both forms of a Brazilian mobile, or just the number itself.
 */
export function brazilianVariants(digits: string): string[] {
  const with9 = BR_MOBILE_WITH_NINE.exec(digits);
  if (with9) return [digits, `55${with9[1]}${with9[2]}`];
  const without9 = BR_MOBILE_WITHOUT_NINE.exec(digits);
  if (without9) return [`55${without9[1]}9${without9[2]}`, digits];
  return [digits];
}

/**
 * A phone number as an integrator writes it (`+55 (21) 9876-5432`,
 * `5521987654321`, `0055…`), in E.164 digits with Brazilian mobiles in their
 * canonical form; `undefined` when it cannot be an international number
 * (letters, too short or long, no country code).
 */
export function normalizePhone(input: string): string | undefined {
  const trimmed = input.trim();
  if (!/^\+?[\d\s().-]+$/.test(trimmed)) return undefined;
  let digits = trimmed.replace(/\D/g, '');
  // The international call prefix some write instead of `+`.
  if (!trimmed.startsWith('+') && digits.startsWith('00')) digits = digits.slice(2);
  if (!/^[1-9]\d{7,14}$/.test(digits)) return undefined;
  return canonicalBrazilian(digits);
}
