/** Turns the contacts a socket reports (history sets, `contacts.upsert`, `contacts.update`) into the people the contact names know. */
import type { Contact } from '@whiskeysockets/baileys';
import { coerceError } from '../lib/errors.js';
import type { WaContact } from '../inbound/contact-names.js';
import type { Logger } from '../observability/logger.js';

/** A JID without its device suffix (`5511…:3@s.whatsapp.net` → `5511…@s.whatsapp.net`). */
function bare(jid: string): string {
  const [user, server] = jid.split('@');
  return `${user!.split(':')[0]!}@${server!}`;
}

/**
 * The people among a socket's contacts: each with its phone-number JID and
 * LID as WhatsApp gave them (a LID alone given the number WhatsApp told this
 * number for it), and its saved and own names. Groups, broadcasts and the
 * number itself are left out.
 */
export async function waContacts(
  list: readonly Partial<Contact>[],
  deps: { pnForLid?(lidJid: string): Promise<string | undefined>; ownJids?(): string[]; log: Logger },
): Promise<WaContact[]> {
  const own = new Set((deps.ownJids?.() ?? []).map(bare));
  const out: WaContact[] = [];
  for (const c of list) {
    const ids = [c.id, c.lid, c.phoneNumber].filter((x): x is string => typeof x === 'string' && x.includes('@')).map(bare);
    let pnJid = ids.find((j) => j.endsWith('@s.whatsapp.net'));
    const lidJid = ids.find((j) => j.endsWith('@lid'));
    if (!pnJid && lidJid && deps.pnForLid) {
      pnJid = await deps.pnForLid(lidJid).then(
        (pn) => (pn ? bare(pn) : undefined),
        (err: unknown) => {
          deps.log.debug({ err: coerceError(err) }, 'no phone number known for a LID');
          return undefined;
        },
      );
    }
    if (!pnJid && !lidJid) continue;
    if ((pnJid && own.has(pnJid)) || (lidJid && own.has(lidJid))) continue;
    const name = c.name?.trim() || c.verifiedName?.trim();
    const notify = c.notify?.trim();
    out.push({ ...(pnJid ? { pnJid } : {}), ...(lidJid ? { lidJid } : {}), ...(name ? { name } : {}), ...(notify ? { notify } : {}) });
  }
  return out;
}
