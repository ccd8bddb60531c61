/** The content of a Chatwoot bot message (`content_type` with its `content_attributes`), parsed from a webhook (pure). */
import { z } from 'zod';

/**
 * What a Chatwoot bot (an agent bot, Captain, Dialogflow, Typebot…) sends
 * besides plain text, as Chatwoot's `ContentAttributeValidator` allows it:
 * - `input_select`: `items` `[{title, value}]`, the options of a question;
 * - `cards`: `items` `[{title, description, media_url, actions}]`, each
 *   action a link `{type:'link', text, uri}` or a postback
 *   `{type:'postback', text, payload}`;
 * - `form`: `items` `[{name, label, type, placeholder, …}]`, fields to fill;
 * - `input_email`: no attributes, the content asks for an e-mail address;
 * - `article`: `items` `[{title, description, link}]`.
 * Every field is capped, so one webhook cannot make Ponte send a flood.
 */
export type BotContent =
  | { type: 'input_select'; items: SelectItem[] }
  | { type: 'cards'; items: CardItem[] }
  | { type: 'form'; items: FormItem[] }
  | { type: 'input_email' }
  | { type: 'article'; items: ArticleItem[] };

export interface SelectItem {
  title: string;
  value: string;
}

export type CardAction = { type: 'link'; text: string; uri: string } | { type: 'postback'; text: string; payload: string };

export interface CardItem {
  title: string;
  description?: string;
  mediaUrl?: string;
  actions: CardAction[];
}

export interface FormItem {
  name: string;
  label?: string;
  placeholder?: string;
  type?: string;
}

export interface ArticleItem {
  title: string;
  description?: string;
  link?: string;
}

/** The most items of one bot message Ponte sends (Chatwoot sets no limit; WhatsApp polls take 12 options). */
export const MAX_BOT_ITEMS = 20;
const MAX_ACTIONS = 10;

const text = (max: number) => z.string().trim().min(1).max(max);
/** A value that may come as a number (`value: 2`): kept as its text. */
const scalar = z.union([z.string(), z.number(), z.boolean()]).transform((v) => String(v));
const optionalText = (max: number) =>
  z
    .string()
    .nullish()
    .transform((v) => (v == null || v.trim() === '' ? undefined : v.trim()))
    .pipe(z.string().max(max).optional());
const httpUri = z
  .string()
  .trim()
  .max(2000)
  .refine((v) => /^https?:\/\/\S+$/i.test(v) && URL.canParse(v), 'must be an http(s) URL');

const SelectItemSchema = z.object({ title: text(200), value: scalar.optional() }).transform((i): SelectItem => ({ title: i.title, value: i.value ?? i.title }));

const CardActionSchema = z.union([
  z.object({ type: z.literal('link'), text: text(100), uri: httpUri }),
  z.object({ type: z.literal('postback'), text: text(100), payload: scalar.optional() }).transform((a): CardAction => ({ type: 'postback', text: a.text, payload: a.payload ?? a.text })),
]);

const CardItemSchema = z
  .object({
    title: text(200),
    description: optionalText(1000),
    media_url: httpUri.nullish(),
    actions: z.array(CardActionSchema).max(MAX_ACTIONS).nullish(),
  })
  .transform((c): CardItem => ({ title: c.title, ...(c.description ? { description: c.description } : {}), ...(c.media_url ? { mediaUrl: c.media_url } : {}), actions: c.actions ?? [] }));

const FormItemSchema = z
  .object({ name: text(100), label: optionalText(200), placeholder: optionalText(200), title: optionalText(200), type: optionalText(40) })
  .transform((f): FormItem => {
    const label = f.label ?? f.title;
    return { name: f.name, ...(label ? { label } : {}), ...(f.placeholder ? { placeholder: f.placeholder } : {}), ...(f.type ? { type: f.type } : {}) };
  });

const ArticleItemSchema = z
  .object({ title: text(200), description: optionalText(1000), link: httpUri.nullish() })
  .transform((a): ArticleItem => ({ title: a.title, ...(a.description ? { description: a.description } : {}), ...(a.link ? { link: a.link } : {}) }));

const items = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item).min(1).max(MAX_BOT_ITEMS) });

/**
 * The bot content of a webhook's `content_type` and `content_attributes`,
 * or undefined for plain text and for any shape Chatwoot's bots do not
 * send (the message then goes as its plain content).
 */
export function parseBotContent(contentType: unknown, attributes: unknown): BotContent | undefined {
  switch (contentType) {
    case 'input_select': {
      const r = items(SelectItemSchema).safeParse(attributes);
      return r.success ? { type: 'input_select', items: r.data.items } : undefined;
    }
    case 'cards': {
      const r = items(CardItemSchema).safeParse(attributes);
      return r.success ? { type: 'cards', items: r.data.items } : undefined;
    }
    case 'form': {
      const r = items(FormItemSchema).safeParse(attributes);
      return r.success ? { type: 'form', items: r.data.items } : undefined;
    }
    case 'input_email':
      return { type: 'input_email' };
    case 'article': {
      const r = items(ArticleItemSchema).safeParse(attributes);
      return r.success ? { type: 'article', items: r.data.items } : undefined;
    }
    default:
      return undefined;
  }
}
