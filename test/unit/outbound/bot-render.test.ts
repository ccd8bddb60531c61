import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBotContent, type BotContent } from '../../../src/outbound/bot-content.js';
import { DEFAULT_POLL_NAME, renderBot } from '../../../src/outbound/bot-render.js';
import { decideInboxEvent } from '../../../src/outbound/inbox-events.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/chatwoot-webhooks');
const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Record<string, unknown>;
const rules = { commandKeyword: 'erga', agentEmails: [] };

function jobOf(name: string) {
  const d = decideInboxEvent(fixture(name), rules, 1);
  if (d.action !== 'queue') throw new Error(`ignored: ${d.reason}`);
  return d.job;
}

describe('bot messages in the inbox webhook', () => {
  it('keeps the content type and attributes of each kind Chatwoot bots send', () => {
    expect(jobOf('message_created.bot_input_select.json').bot).toEqual({
      type: 'input_select',
      items: [
        { title: 'Pix', value: 'pix' },
        { title: 'Cartão de crédito', value: 'credit_card' },
        { title: 'Boleto', value: 'boleto' },
      ],
    });
    const cards = jobOf('message_created.bot_cards.json').bot as Extract<BotContent, { type: 'cards' }>;
    expect(cards.items[0]).toEqual({
      title: 'Tênis Corrida Azul',
      description: 'Amortecimento leve, tamanhos 36 a 44. R$ 299,90',
      mediaUrl: 'https://loja.example.com/img/tenis-azul.jpg',
      actions: [
        { type: 'link', text: 'Ver no site', uri: 'https://loja.example.com/p/tenis-azul' },
        { type: 'postback', text: 'Quero este', payload: 'BUY_TENIS_AZUL' },
      ],
    });
    expect(jobOf('message_created.bot_form.json').bot).toMatchObject({ type: 'form', items: [{ name: 'nome', label: 'Seu nome' }, { name: 'email', label: 'E-mail' }, { name: 'pedido' }] });
    expect(jobOf('message_created.bot_input_email.json').bot).toEqual({ type: 'input_email' });
    expect(jobOf('message_created.bot_article.json').bot).toMatchObject({ type: 'article', items: [{ title: 'Como trocar um produto', link: 'https://ajuda.loja.example.com/trocas' }, {}] });
    // A bot has no agent name to sign with.
    expect(jobOf('message_created.bot_input_select.json').senderName).toBeUndefined();
    expect(jobOf('message_created.agent_text_reply.json').bot).toBeUndefined();
  });

  it.each([
    ['an unknown content type', 'input_csat', { items: [{ title: 'a', value: 'b' }] }],
    ['no items', 'input_select', {}],
    ['an empty list', 'input_select', { items: [] }],
    ['an option without a title', 'input_select', { items: [{ value: 'x' }] }],
    ['items that are not a list', 'cards', { items: 'x' }],
    ['a card link that is no http URL', 'cards', { items: [{ title: 'A', actions: [{ type: 'link', text: 'go', uri: 'javascript:alert(1)' }] }] }],
    ['an unknown action', 'cards', { items: [{ title: 'A', actions: [{ type: 'call', text: 'ring' }] }] }],
    ['too many options', 'input_select', { items: Array.from({ length: 21 }, (_, i) => ({ title: `o${i}`, value: i })) }],
    ['a title of 10,000 characters', 'article', { items: [{ title: 'x'.repeat(10_000) }] }],
  ])('falls back to plain content on %s', (_what, contentType, attrs) => {
    expect(parseBotContent(contentType, attrs)).toBeUndefined();
    const payload = { ...fixture('message_created.bot_input_select.json'), content_type: contentType, content_attributes: attrs };
    const d = decideInboxEvent(payload, rules, 1);
    expect(d).toMatchObject({ action: 'queue', job: { content: 'Como prefere pagar?' } });
    if (d.action === 'queue') expect(d.job.bot).toBeUndefined();
  });

  it('takes values that are numbers as text, and a missing value as the title', () => {
    expect(parseBotContent('input_select', { items: [{ title: 'Um', value: 1 }, { title: 'Dois' }] })).toEqual({ type: 'input_select', items: [{ title: 'Um', value: '1' }, { title: 'Dois', value: 'Dois' }] });
  });
});

describe('renderBot', () => {
  const select = parseBotContent('input_select', fixture('message_created.bot_input_select.json').content_attributes)!;

  it('input_select as a numbered list under the question (text style)', () => {
    const r = renderBot('Como **prefere** pagar?', select, 'text');
    expect(r.steps).toEqual([{ kind: 'text', text: 'Como *prefere* pagar?\n\n1. Pix\n2. Cartão de crédito\n3. Boleto' }]);
    expect(r.question).toEqual({ step: 0, options: [{ title: 'Pix', value: 'pix' }, { title: 'Cartão de crédito', value: 'credit_card' }, { title: 'Boleto', value: 'boleto' }] });
  });

  it('input_select as a poll asking the question (poll style)', () => {
    const r = renderBot('Como prefere pagar?', select, 'poll');
    expect(r.steps).toEqual([{ kind: 'poll', name: 'Como prefere pagar?', values: ['Pix', 'Cartão de crédito', 'Boleto'] }]);
    expect(r.question?.step).toBe(0);
    // No text of its own: a default question; a text too long for a poll goes first.
    expect(renderBot('', select, 'poll').steps).toEqual([{ kind: 'poll', name: DEFAULT_POLL_NAME, values: ['Pix', 'Cartão de crédito', 'Boleto'] }]);
    const long = renderBot('x'.repeat(300), select, 'poll');
    expect(long.steps.map((s) => s.kind)).toEqual(['text', 'poll']);
    expect(long.question?.step).toBe(1);
  });

  it('options a poll cannot hold go as the list even in poll style', () => {
    const many = parseBotContent('input_select', { items: Array.from({ length: 13 }, (_, i) => ({ title: `Opção ${i + 1}`, value: String(i) })) })!;
    expect(renderBot('Escolha', many, 'poll').steps[0]!.kind).toBe('text');
    const twins = parseBotContent('input_select', { items: [{ title: 'Sim', value: 'a' }, { title: 'Sim', value: 'b' }] })!;
    expect(renderBot('Escolha', twins, 'poll').steps[0]!.kind).toBe('text');
    const one = parseBotContent('input_select', { items: [{ title: 'Ok', value: 'ok' }] })!;
    expect(renderBot('Confirma?', one, 'poll').steps).toEqual([{ kind: 'text', text: 'Confirma?\n\n1. Ok' }]);
  });

  it('cards: the text, each card as an image with title, description, links and its numbered postbacks', () => {
    const cards = parseBotContent('cards', fixture('message_created.bot_cards.json').content_attributes)!;
    const r = renderBot('Veja nossas ofertas:', cards, 'text');
    expect(r.steps).toEqual([
      { kind: 'text', text: 'Veja nossas ofertas:' },
      {
        kind: 'card',
        imageUrl: 'https://loja.example.com/img/tenis-azul.jpg',
        caption: '*Tênis Corrida Azul*\nAmortecimento leve, tamanhos 36 a 44. R$ 299,90\n\nVer no site: https://loja.example.com/p/tenis-azul\n\n1. Quero este (Tênis Corrida Azul)',
      },
      { kind: 'card', imageUrl: 'https://loja.example.com/img/tenis-branco.jpg', caption: '*Tênis Casual Branco*\nCouro sintético. R$ 249,90\n\n2. Quero este (Tênis Casual Branco)' },
    ]);
    // The answer carries the postback's own text; the label told the two apart.
    expect(r.question).toEqual({
      step: 1,
      options: [
        { title: 'Quero este', value: 'BUY_TENIS_AZUL', label: 'Quero este (Tênis Corrida Azul)' },
        { title: 'Quero este', value: 'BUY_TENIS_BRANCO', label: 'Quero este (Tênis Casual Branco)' },
      ],
    });
    const poll = renderBot('Veja nossas ofertas:', cards, 'poll');
    expect(poll.steps.map((s) => s.kind)).toEqual(['text', 'card', 'card', 'poll']);
    expect(poll.steps[3]).toEqual({ kind: 'poll', name: DEFAULT_POLL_NAME, values: ['Quero este (Tênis Corrida Azul)', 'Quero este (Tênis Casual Branco)'] });
    expect(poll.question?.step).toBe(3);
    expect(poll.steps[1]).toMatchObject({ caption: '*Tênis Corrida Azul*\nAmortecimento leve, tamanhos 36 a 44. R$ 299,90\n\nVer no site: https://loja.example.com/p/tenis-azul' });
  });

  it('a card without an image is a text; cards with links only ask nothing', () => {
    const cards = parseBotContent('cards', { items: [{ title: 'Horários', description: 'Seg a sex, 9h às 18h', actions: [{ type: 'link', text: 'Mapa', uri: 'https://maps.example.com/loja' }] }] })!;
    const r = renderBot(null, cards, 'text');
    expect(r).toEqual({ steps: [{ kind: 'text', text: '*Horários*\nSeg a sex, 9h às 18h\n\nMapa: https://maps.example.com/loja' }] });
  });

  it('form and input_email: the prompt as text; article: title, description and link of each', () => {
    const form = parseBotContent('form', fixture('message_created.bot_form.json').content_attributes)!;
    expect(renderBot('Para continuar, preciso de alguns dados:', form, 'poll')).toEqual({
      steps: [{ kind: 'text', text: 'Para continuar, preciso de alguns dados:\n\n- Seu nome\n- E-mail\n- Número do pedido' }],
    });
    expect(renderBot('Qual é o seu e-mail?', { type: 'input_email' }, 'text')).toEqual({ steps: [{ kind: 'text', text: 'Qual é o seu e-mail?' }] });
    expect(renderBot('', { type: 'input_email' }, 'text')).toEqual({ steps: [] });
    const article = parseBotContent('article', fixture('message_created.bot_article.json').content_attributes)!;
    expect(renderBot('Estes artigos podem ajudar:', article, 'text').steps).toEqual([
      {
        kind: 'text',
        text: 'Estes artigos podem ajudar:\n\n*Como trocar um produto*\nPrazos e passo a passo da troca.\nhttps://ajuda.loja.example.com/trocas\n\n*Prazos de entrega*\nQuanto tempo leva para cada região.\nhttps://ajuda.loja.example.com/entregas',
      },
    ]);
  });
});
