/** Turns a Chatwoot bot message into what WhatsApp can show: texts, card images, a poll, and the question its options ask (pure). */
import type { BotOption, BotOptionsStyle } from '../model/bot-question.js';
import type { BotContent, CardItem } from './bot-content.js';
import { markdownToWhatsApp } from './markdown.js';

/** One WhatsApp message of a bot message, in sending order. */
export type BotStep =
  | { kind: 'text'; text: string }
  /** An image with its caption; sent as the caption alone when the image cannot be fetched. */
  | { kind: 'card'; imageUrl: string; caption: string }
  | { kind: 'poll'; name: string; values: string[] };

export interface BotRendering {
  steps: BotStep[];
  /**
   * The options the message asks the customer to choose from, and the
   * index of the first step that shows them (the question is remembered
   * before that step is sent, so an answer that comes at once finds it).
   */
  question?: { options: BotOption[]; step: number };
}

/** WhatsApp's limits on a poll: options, option length, question length. */
export const POLL_MAX_OPTIONS = 12;
const POLL_MAX_OPTION_CHARS = 100;
const POLL_MAX_NAME_CHARS = 255;
/** The poll's question when the bot message has no text of its own to ask with. */
export const DEFAULT_POLL_NAME = 'Choose an option';

function joinBlocks(...blocks: Array<string | undefined>): string {
  return blocks.filter((b): b is string => b !== undefined && b.trim() !== '').join('\n\n');
}

function joinLines(...lines: Array<string | undefined>): string {
  return lines.filter((l): l is string => l !== undefined && l.trim() !== '').join('\n');
}

/** `1. Title` lines, numbered from `first`. */
function numbered(options: readonly BotOption[], first = 1): string {
  return options.map((o, i) => `${first + i}. ${o.label ?? o.title}`).join('\n');
}

/** Whether options fit a WhatsApp poll: 2 to 12, each short enough, no two alike (a vote names an option by its text). */
function pollable(options: readonly BotOption[]): boolean {
  const shown = options.map((o) => o.label ?? o.title);
  return shown.length >= 2 && shown.length <= POLL_MAX_OPTIONS && shown.every((s) => s.length <= POLL_MAX_OPTION_CHARS) && new Set(shown).size === shown.length;
}

/** A poll of the options, asked with `prompt` when it fits a poll's question; else the prompt goes first as a text. */
function asPoll(prompt: string, options: readonly BotOption[]): BotStep[] {
  const values = options.map((o) => o.label ?? o.title);
  if (prompt === '') return [{ kind: 'poll', name: DEFAULT_POLL_NAME, values }];
  if (prompt.length <= POLL_MAX_NAME_CHARS) return [{ kind: 'poll', name: prompt, values }];
  return [{ kind: 'text', text: prompt }, { kind: 'poll', name: DEFAULT_POLL_NAME, values }];
}

/**
 * The postback actions of every card as options, in card order. Two cards
 * offering the same text (each a "Buy" button) get the card's title in
 * their label, so a poll can tell them apart and a typed title is not
 * taken for the wrong one.
 */
function postbackOptions(cards: readonly CardItem[]): Array<BotOption & { card: number }> {
  const all = cards.flatMap((c, card) => c.actions.flatMap((a) => (a.type === 'postback' ? [{ title: a.text, value: a.payload, card }] : [])));
  const count = new Map<string, number>();
  for (const o of all) count.set(o.title, (count.get(o.title) ?? 0) + 1);
  return all.map((o) => ((count.get(o.title) ?? 0) > 1 ? { ...o, label: `${o.title} (${cards[o.card]!.title})` } : o));
}

/**
 * What a bot message becomes on WhatsApp (issue 20, "Bot messages"):
 * - `input_select`: its text and the options as a numbered list (`text`),
 *   or a poll asking its text (`poll`; options that do not fit a poll go
 *   as the list);
 * - `cards`: the text, then each card as its image with a caption (title,
 *   description, links); postback buttons are options like `input_select`:
 *   numbered in their card's caption, or one poll after the cards;
 * - `form`: the text and the fields to fill; `input_email`: the text;
 *   the customer's reply comes back as typed;
 * - `article`: the text, then each article's title, description and link.
 * `content` is Chatwoot's markdown, converted for WhatsApp.
 */
export function renderBot(content: string | null, bot: BotContent, style: BotOptionsStyle): BotRendering {
  const prompt = content ? markdownToWhatsApp(content).trim() : '';
  switch (bot.type) {
    case 'input_select': {
      const options: BotOption[] = bot.items.map((i) => ({ title: i.title, value: i.value }));
      if (style === 'poll' && pollable(options)) {
        const steps = asPoll(prompt, options);
        return { steps, question: { options, step: steps.length - 1 } };
      }
      return { steps: [{ kind: 'text', text: joinBlocks(prompt, numbered(options)) }], question: { options, step: 0 } };
    }
    case 'cards':
      return renderCards(prompt, bot.items, style);
    case 'form': {
      const fields = bot.items.map((f) => `- ${f.label ?? f.placeholder ?? f.name}`).join('\n');
      return { steps: [{ kind: 'text', text: joinBlocks(prompt, fields) }] };
    }
    case 'input_email':
      return { steps: prompt ? [{ kind: 'text', text: prompt }] : [] };
    case 'article': {
      const articles = bot.items.map((a) => joinLines(`*${a.title}*`, a.description, a.link)).join('\n\n');
      return { steps: [{ kind: 'text', text: joinBlocks(prompt, articles) }] };
    }
  }
}

function renderCards(prompt: string, cards: readonly CardItem[], style: BotOptionsStyle): BotRendering {
  const options = postbackOptions(cards);
  const inPoll = style === 'poll' && pollable(options);
  const steps: BotStep[] = prompt ? [{ kind: 'text', text: prompt }] : [];
  let questionStep: number | undefined;
  let n = 0;
  cards.forEach((card, i) => {
    const links = card.actions.flatMap((a) => (a.type === 'link' ? [`${a.text}: ${a.uri}`] : []));
    const mine = options.filter((o) => o.card === i);
    const choices = !inPoll && mine.length > 0 ? numbered(mine, n + 1) : undefined;
    n += mine.length;
    const caption = joinBlocks(joinLines(`*${card.title}*`, card.description), links.join('\n'), choices);
    if (choices !== undefined) questionStep ??= steps.length;
    steps.push(card.mediaUrl ? { kind: 'card', imageUrl: card.mediaUrl, caption } : { kind: 'text', text: caption });
  });
  const plain: BotOption[] = options.map(({ card: _card, ...o }) => o);
  if (inPoll) {
    steps.push({ kind: 'poll', name: DEFAULT_POLL_NAME, values: plain.map((o) => o.label ?? o.title) });
    questionStep = steps.length - 1;
  }
  return { steps, ...(questionStep !== undefined ? { question: { options: plain, step: questionStep } } : {}) };
}
