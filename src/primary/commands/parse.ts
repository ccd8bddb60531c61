/**
 * The operator command language (`erga …`) and its parser.
 *
 * Written in a Chatwoot conversation:
 *
 *   erga <inbox_id> [<account_id>]          link a number to an API inbox (QR posted here)
 *   erga new <name> [<account_id>]          create an API inbox named <name> pointed at Ponte, then link a number to it
 *   erga code <inbox_id> <account_id> <phone>   the same with a pairing code instead of a QR
 *   erga status                             every instance
 *   erga stop <inbox_id>                    stop an instance (keeps the link)
 *   erga logout <inbox_id>                  unlink the phone and forget the instance's state
 *   erga replay <inbox_id>                  send the instance's parked messages to Chatwoot again
 *   erga import <inbox_id> [<days>]         import the instance's WhatsApp history of the last <days> days
 *   erga contacts <inbox_id>                name the instance's contacts as WhatsApp does, creating the missing ones
 *   erga help
 *
 * The keyword is `WEBHOOK_COMMAND_KEYWORD` (case-insensitive). `<account_id>`
 * defaults to `DEFAULT_CHATWOOT_ACCOUNT_ID`, else to the account the command
 * was written in for `stop`, `logout`, `replay`, `import` and `contacts`; `<days>` (1 to
 * 30) to `HISTORY_IMPORT_DAYS`. In `new`, a last word
 * that is a number is the account id; a name that ends in a number is
 * written in quotes (`erga new "Loja 2" 1`).
 */
import { MAX_IMPORT_DAYS } from '../../model/history-import.js';

export type Command =
  | { kind: 'link'; inboxId: number; accountId: number }
  | { kind: 'new'; name: string; accountId: number }
  | { kind: 'code'; inboxId: number; accountId: number; phone: string }
  | { kind: 'status' }
  | { kind: 'stop'; inboxId: number }
  | { kind: 'logout'; inboxId: number }
  | { kind: 'replay'; inboxId: number }
  | { kind: 'contacts'; inboxId: number }
  | { kind: 'import'; inboxId: number; days?: number }
  | { kind: 'help' }
  | { kind: 'invalid'; reason: string };

const ID = /^[1-9]\d{0,9}$/;

/** Longest inbox name taken (Chatwoot's column has no limit; a name is read on every screen). */
export const MAX_INBOX_NAME = 100;

/** Straight and typographic double quotes (phones turn `"` into `“…”`). */
const QUOTED = /^["“”]([^"“”]*)["“”](?:\s+(.*))?$/s;

export function usage(keyword: string): string {
  return [
    `${keyword} <inbox_id> <account_id>: link a WhatsApp number to an API inbox (the QR code is posted here)`,
    `${keyword} new <name> <account_id>: create an API inbox named <name>, point its webhook at Ponte, and link a number to it`,
    `${keyword} code <inbox_id> <account_id> <phone>: the same with a pairing code`,
    `${keyword} status: every instance and its state`,
    `${keyword} stop <inbox_id>: stop an instance (the phone stays linked)`,
    `${keyword} logout <inbox_id>: unlink the phone and forget the instance`,
    `${keyword} replay <inbox_id>: send the messages that failed for good (parked) to Chatwoot again`,
    `${keyword} import <inbox_id> [days]: import the number's WhatsApp history of the last days (1 to ${MAX_IMPORT_DAYS}) into Chatwoot`,
    `${keyword} contacts <inbox_id>: give the inbox's contacts the names WhatsApp knows, and create the contacts that have no conversation yet`,
    `${keyword} help: this list`,
  ].join('\n');
}

/** `undefined` when the text is not a command at all (does not start with the keyword). */
export function parseCommand(text: string | null | undefined, keyword: string, defaultAccountId?: number): Command | undefined {
  if (!text) return undefined;
  const words = text.trim().split(/\s+/);
  if (words[0]?.toLowerCase() !== keyword.toLowerCase()) return undefined;
  const [sub, ...rest] = words.slice(1);
  const id = (v: string | undefined) => (v !== undefined && ID.test(v) ? Number(v) : undefined);
  if (sub === undefined) return { kind: 'invalid', reason: `expected "${keyword} <inbox_id> <account_id>"` };
  switch (sub.toLowerCase()) {
    case 'help':
    case 'ajuda':
      return rest.length === 0 ? { kind: 'help' } : { kind: 'invalid', reason: `"${keyword} help" takes nothing more` };
    case 'status':
      return rest.length === 0 ? { kind: 'status' } : { kind: 'invalid', reason: `"${keyword} status" takes nothing more` };
    case 'stop':
    case 'logout':
    case 'replay':
    case 'contacts': {
      const inboxId = id(rest[0]);
      if (inboxId === undefined || rest.length !== 1) return { kind: 'invalid', reason: `expected "${keyword} ${sub.toLowerCase()} <inbox_id>"` };
      return { kind: sub.toLowerCase() as 'stop' | 'logout' | 'replay' | 'contacts', inboxId };
    }
    case 'import': {
      const inboxId = id(rest[0]);
      const days = rest[1] !== undefined && /^\d{1,3}$/.test(rest[1]) ? Number(rest[1]) : undefined;
      if (inboxId === undefined || rest.length > 2 || (rest.length === 2 && (days === undefined || days < 1 || days > MAX_IMPORT_DAYS))) {
        return { kind: 'invalid', reason: `expected "${keyword} import <inbox_id> [days]", days from 1 to ${MAX_IMPORT_DAYS}` };
      }
      return { kind: 'import', inboxId, ...(days !== undefined ? { days } : {}) };
    }
    case 'new':
      return parseNew(rest, keyword, defaultAccountId);
    case 'code': {
      const inboxId = id(rest[0]);
      const accountId = id(rest[1]);
      const phone = (rest.slice(2).join('') || '').replace(/[\s()+-]/g, '');
      if (inboxId === undefined || accountId === undefined || !/^\d{8,15}$/.test(phone)) {
        return { kind: 'invalid', reason: `expected "${keyword} code <inbox_id> <account_id> <phone with country code>"` };
      }
      return { kind: 'code', inboxId, accountId, phone };
    }
    default: {
      const inboxId = id(sub);
      if (inboxId === undefined) return { kind: 'invalid', reason: `unknown command "${sub}"; expected "${keyword} <inbox_id> <account_id>" or "${keyword} help"` };
      if (rest.length > 1) return { kind: 'invalid', reason: `expected "${keyword} <inbox_id> <account_id>"` };
      const accountId = rest.length === 1 ? id(rest[0]) : defaultAccountId;
      if (accountId === undefined) {
        return { kind: 'invalid', reason: rest.length === 1 ? `account id "${rest[0]}" is not a positive integer` : `expected "${keyword} <inbox_id> <account_id>" (no default account is configured)` };
      }
      return { kind: 'link', inboxId, accountId };
    }
  }
}

/** `new <name> [<account_id>]`: the name is every word but a last numeric one, or the quoted part. */
function parseNew(words: readonly string[], keyword: string, defaultAccountId: number | undefined): Command {
  const expected = `expected "${keyword} new <name> <account_id>"`;
  const text = words.join(' ');
  let name: string;
  let accountWord: string | undefined;
  const quoted = QUOTED.exec(text);
  if (quoted) {
    name = quoted[1]!.trim();
    const after = (quoted[2] ?? '').trim();
    if (after.includes(' ')) return { kind: 'invalid', reason: expected };
    accountWord = after === '' ? undefined : after;
  } else if (words.length >= 2 && ID.test(words[words.length - 1]!)) {
    name = words.slice(0, -1).join(' ');
    accountWord = words[words.length - 1];
  } else {
    name = text;
  }
  if (name === '') return { kind: 'invalid', reason: `${expected}: the inbox needs a name` };
  if (/["“”]/.test(name)) return { kind: 'invalid', reason: `${expected}: a quoted name needs its closing quote` };
  if (name.length > MAX_INBOX_NAME) return { kind: 'invalid', reason: `the inbox name has ${name.length} characters; at most ${MAX_INBOX_NAME} are taken` };
  if (accountWord !== undefined && !ID.test(accountWord)) return { kind: 'invalid', reason: `account id "${accountWord}" is not a positive integer` };
  const accountId = accountWord !== undefined ? Number(accountWord) : defaultAccountId;
  if (accountId === undefined) return { kind: 'invalid', reason: `${expected} (no default account is configured)` };
  return { kind: 'new', name, accountId };
}
