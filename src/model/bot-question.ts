/** A Chatwoot bot's question with options as Ponte sent it on WhatsApp, and how a customer's answer is matched to an option (pure). */

/** One option of a bot question. */
export interface BotOption {
  /** What the answer says in Chatwoot: the option's title (`input_select`) or the postback's text (cards). */
  title: string;
  /** The bot's value for it (`value`, or a postback's `payload`). */
  value: string;
  /** What the customer saw when it differs from the title (two cards offering the same postback text). */
  label?: string;
}

/** The last question with options a bot asked in a conversation, as Ponte remembers it (per instance and conversation). */
export interface BotQuestion {
  /** Chatwoot id of the bot's message: the answer replies to it. */
  messageId: number;
  options: BotOption[];
  /** WhatsApp id of the poll the options went out as (poll style); votes name it. */
  pollWaId?: string;
}

/** What the options are shown as on WhatsApp: a numbered list in text, or a poll. */
export type BotOptionsStyle = 'text' | 'poll';

export const BOT_OPTIONS_STYLES: readonly BotOptionsStyle[] = ['text', 'poll'];

/** Lower case, accents and other marks dropped, spaces collapsed: "  Cartão de CRÉDITO " and "cartao de credito" are one answer. */
export function foldAnswer(s: string): string {
  return s.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase().replace(/\s+/g, ' ').trim();
}

/** An option number as customers type it: `2`, `2.`, `2)`, ` 2 `. */
const NUMBER = /^\s*(\d{1,3})\s*[.)]?\s*$/;

/**
 * The option a typed answer chooses, by its 0-based index: the option's
 * number in the list, or its title (or the label shown) compared without
 * case, accents or surrounding spaces. Undefined when it chooses none, or
 * when a title names more than one option.
 */
export function matchTypedAnswer(options: readonly BotOption[], text: string): number | undefined {
  const n = NUMBER.exec(text);
  if (n) {
    const i = Number(n[1]) - 1;
    return i >= 0 && i < options.length ? i : undefined;
  }
  const folded = foldAnswer(text);
  if (folded === '') return undefined;
  const hits = options.flatMap((o, i) => (foldAnswer(o.title) === folded || (o.label !== undefined && foldAnswer(o.label) === folded) ? [i] : []));
  return hits.length === 1 ? hits[0] : undefined;
}

/**
 * The option a poll vote chooses: the vote names the options it selected
 * by the text shown in the poll (the label, else the title). Undefined for
 * a vote removed (no selection), or one naming several or unknown options.
 */
export function matchVote(options: readonly BotOption[], chosen: readonly string[]): number | undefined {
  if (chosen.length !== 1) return undefined;
  const i = options.findIndex((o) => (o.label ?? o.title) === chosen[0]);
  return i >= 0 ? i : undefined;
}
