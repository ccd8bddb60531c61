/**
 * Chatwoot bot messages end to end: a bot's `input_select` and `cards`
 * (built from Chatwoot's payload shapes, posted through the Chatwoot
 * double's API) reach the sandbox outbox as a numbered list, a poll, card
 * images; the customer's answer (the number, the title, a vote on Ponte's
 * poll) reaches the double as the option's title replying to the bot's
 * message, once.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, type Daemon, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { daemonEnv, linkSandbox, SECRET, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';
import type { OutboxEntry } from '../../src/sandbox/schemas.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/chatwoot-webhooks');
const attributesOf = (name: string): Record<string, unknown> =>
  (JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as { content_attributes: Record<string, unknown> }).content_attributes;

describe('Chatwoot bot messages on WhatsApp, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let accountId: number;
  let key: string;

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    sessions = await tempDir('ponte-e2e-bots-');
    daemon = await startDaemon(daemonEnv({ double, sessions, prefix }, { MAX_WORKERS: '1' }));
    const inboxId = double.addInbox({ accountId, name: 'WhatsApp Bot', webhookUrl: `${daemon.base}/webhook/chatwoot/${accountId}-1?token=${SECRET}`, secret: 'bot-inbox-secret' }).id;
    key = await linkSandbox(daemon, { account: accountId, inbox: inboxId, phone: '5511944440000' });
  }, 60_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  const outbox = async () => ((await api(daemon, 'GET', `/sandbox/instances/${key}/outbox`)).json.messages as OutboxEntry[]) ?? [];
  const cw = (path: string, init: { method: string; body?: unknown }) =>
    fetch(`${double.url}/api/v1/accounts/${accountId}${path}`, {
      method: init.method,
      headers: { api_access_token: double.token, 'content-type': 'application/json' },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });

  /** A customer writes (or votes); resolves with what reached the double. */
  async function customer(body: Record<string, unknown>) {
    const res = await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { pushName: 'Cliente', ...body });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    const id = String(res.json.id);
    return until(`message ${id} in Chatwoot`, () => {
      for (const c of double.conversations(accountId)) {
        const m = double.messages(accountId, c.id).find((x) => x.source_id === `WAID:${id}`);
        if (m) return Promise.resolve(m);
      }
      return Promise.resolve(undefined);
    });
  }

  /** What a bot posts through Chatwoot's API: content, content_type and its content_attributes. */
  async function bot(conversationId: number, contentType: string, content: string, attributes: Record<string, unknown>): Promise<number> {
    const res = await cw(`/conversations/${conversationId}/messages`, { method: 'POST', body: { content, message_type: 'outgoing', content_type: contentType, content_attributes: attributes } });
    expect(res.status).toBe(200);
    return ((await res.json()) as { id: number }).id;
  }

  const sentAfter = async (n: number, count: number) =>
    until(`${count} new outbox entries`, async () => {
      const o = (await outbox()).slice(n);
      return o.length >= count ? o : undefined;
    });

  it('input_select: a numbered list; "2" and the title come back as the option, replying to the bot; once per question', async () => {
    const from = '5511911110001';
    const hello = await customer({ from, text: 'Oi, quero pagar meu pedido', id: 'BOT1' });
    const conv = hello.conversation_id;
    const before = (await outbox()).length;
    const question = await bot(conv, 'input_select', 'Como prefere pagar?', attributesOf('message_created.bot_input_select.json'));
    const [list] = await sentAfter(before, 1);
    expect(list).toMatchObject({ to: `${from}@s.whatsapp.net`, type: 'text', text: 'Como prefere pagar?\n\n1. Pix\n2. Cartão de crédito\n3. Boleto' });
    await until('the bot message sent', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.id === question)?.status === 'sent'));

    const two = await customer({ from, text: '2', id: 'BOT2' });
    expect(two).toMatchObject({ conversation_id: conv, message_type: 'incoming', content: 'Cartão de crédito' });
    expect(two.content_attributes.in_reply_to).toBe(question);
    // The question was answered: a second "2" is just "2".
    const again = await customer({ from, text: '2', id: 'BOT3' });
    expect(again.content).toBe('2');
    expect(again.content_attributes.in_reply_to ?? null).toBeNull();

    // A new question; an answer that matches no option arrives as typed and leaves it open; the title (any case, no accents) answers it.
    const second = await bot(conv, 'input_select', 'E a entrega?', { items: [{ title: 'Retirar na loja', value: 'pickup' }, { title: 'Entrega expressa', value: 'express' }] });
    await sentAfter(before + 1, 1);
    expect((await customer({ from, text: 'tanto faz', id: 'BOT4' })).content).toBe('tanto faz');
    const title = await customer({ from, text: '  ENTREGA expressa ', id: 'BOT5' });
    expect(title.content).toBe('Entrega expressa');
    expect(title.content_attributes.in_reply_to).toBe(second);
  }, 60_000);

  it('input_select as a poll (the instance setting): a vote on Ponte\'s poll comes back as the option, replying to the bot', async () => {
    // The per-instance setting: refused when malformed, applied without a restart.
    expect((await api(daemon, 'POST', `/admin/instances/${key}/settings`, { botOptionsStyle: 'buttons' })).status).toBe(400);
    expect((await api(daemon, 'POST', `/admin/instances/${key}/settings`, {})).status).toBe(400);
    expect((await api(daemon, 'POST', '/admin/instances/9-9/settings', { botOptionsStyle: 'poll' })).status).toBe(404);
    const set = await api(daemon, 'POST', `/admin/instances/${key}/settings`, { botOptionsStyle: 'poll' });
    expect(set).toEqual({ status: 200, json: { instance: key, settings: { botOptionsStyle: 'poll' } } });
    const listed = (await api(daemon, 'GET', '/admin/instances')).json.instances as Array<{ instance?: string; instanceKey: string; settings?: unknown }>;
    expect(listed.find((i) => i.instanceKey === key)?.settings).toEqual({ botOptionsStyle: 'poll' });

    try {
      const from = '5511911110002';
      const conv = (await customer({ from, text: 'Olá', id: 'POLLQ1' })).conversation_id;
      const before = (await outbox()).length;
      const question = await bot(conv, 'input_select', 'Como prefere pagar?', attributesOf('message_created.bot_input_select.json'));
      const [poll] = await sentAfter(before, 1);
      expect(poll).toMatchObject({ to: `${from}@s.whatsapp.net`, type: 'poll', text: 'Como prefere pagar?', options: ['Pix', 'Cartão de crédito', 'Boleto'] });

      const vote = await customer({ from, type: 'vote', targetId: poll!.id, options: ['Boleto'] });
      expect(vote).toMatchObject({ conversation_id: conv, message_type: 'incoming', content: 'Boleto' });
      expect(vote.content_attributes.in_reply_to).toBe(question);
      // The question is used up: another vote arrives as a vote, and Ponte can still read it.
      const revote = await customer({ from, type: 'vote', targetId: poll!.id, options: ['Pix'] });
      expect(revote.content).toBe('🗳️ Voted: Pix');
    } finally {
      expect((await api(daemon, 'POST', `/admin/instances/${key}/settings`, { botOptionsStyle: null })).json).toEqual({ instance: key, settings: {} });
    }
  }, 60_000);

  it('cards: each card an image with its caption (a host not allowed: the caption alone), postbacks answered like options', async () => {
    const from = '5511911110003';
    const conv = (await customer({ from, text: 'Quais tênis vocês têm?', id: 'CARD1' })).conversation_id;
    // The card's picture, stored in Chatwoot (its own origin, so Ponte may fetch it): a private note's attachment.
    const jpeg = Buffer.from('ffd8ffe000104a46494600010100000100010000ffd9', 'hex');
    const form = new FormData();
    form.append('content', 'foto do catálogo');
    form.append('message_type', 'outgoing');
    form.append('private', 'true');
    form.append('attachments[]', new Blob([new Uint8Array(jpeg)], { type: 'image/jpeg' }), 'tenis-azul.jpg');
    const note = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conv}/messages`, { method: 'POST', headers: { api_access_token: double.token }, body: form });
    expect(note.status).toBe(200);
    const imageUrl = double.messages(accountId, conv).find((m) => m.private)!.attachments[0]!.data_url;

    const items = attributesOf('message_created.bot_cards.json').items as Array<Record<string, unknown>>;
    const before = (await outbox()).length;
    const cards = await bot(conv, 'cards', 'Veja nossas ofertas:', { items: [{ ...items[0], media_url: imageUrl }, { ...items[1], media_url: 'https://images.example.net/tenis-branco.jpg' }] });
    const sent = await sentAfter(before, 3);
    expect(sent.map((e) => e.type)).toEqual(['text', 'image', 'text']);
    expect(sent[0]!.text).toBe('Veja nossas ofertas:');
    expect(sent[1]).toMatchObject({ mediaSha256: createHash('sha256').update(jpeg).digest('hex') });
    expect(sent[1]!.caption).toBe('*Tênis Corrida Azul*\nAmortecimento leve, tamanhos 36 a 44. R$ 299,90\n\nVer no site: https://loja.example.com/p/tenis-azul\n\n1. Quero este (Tênis Corrida Azul)');
    expect(sent[2]!.text).toBe('*Tênis Casual Branco*\nCouro sintético. R$ 249,90\n\n2. Quero este (Tênis Casual Branco)');
    await until('the cards sent', () => Promise.resolve(double.messages(accountId, conv).find((m) => m.id === cards)?.status === 'sent'));

    const answer = await customer({ from, text: '2', id: 'CARD2' });
    expect(answer.content).toBe('Quero este');
    expect(answer.content_attributes.in_reply_to).toBe(cards);
    // Nothing private left the building.
    expect((await outbox()).some((e) => e.text?.includes('catálogo') || e.caption?.includes('catálogo'))).toBe(false);
  }, 60_000);

  it('cards as a poll, form, input_email and article: what each becomes, and a vote on the cards\' poll', async () => {
    await api(daemon, 'POST', `/admin/instances/${key}/settings`, { botOptionsStyle: 'poll' });
    try {
      const from = '5511911110004';
      const conv = (await customer({ from, text: 'Oi', id: 'MIX1' })).conversation_id;
      const before = (await outbox()).length;
      const items = (attributesOf('message_created.bot_cards.json').items as Array<Record<string, unknown>>).map(({ media_url: _m, ...card }) => card);
      const cards = await bot(conv, 'cards', '', { items });
      await bot(conv, 'form', 'Para continuar, preciso de alguns dados:', attributesOf('message_created.bot_form.json'));
      await bot(conv, 'input_email', 'Qual é o seu e-mail?', {});
      await bot(conv, 'article', 'Estes artigos podem ajudar:', attributesOf('message_created.bot_article.json'));
      const sent = await sentAfter(before, 6);
      expect(sent.map((e) => e.type)).toEqual(['text', 'text', 'poll', 'text', 'text', 'text']);
      expect(sent[2]!.options).toEqual(['Quero este (Tênis Corrida Azul)', 'Quero este (Tênis Casual Branco)']);
      expect(sent[3]!.text).toBe('Para continuar, preciso de alguns dados:\n\n- Seu nome\n- E-mail\n- Número do pedido');
      expect(sent[4]!.text).toBe('Qual é o seu e-mail?');
      expect(sent[5]!.text).toContain('*Como trocar um produto*\nPrazos e passo a passo da troca.\nhttps://ajuda.loja.example.com/trocas');

      // The form and the e-mail asked no options: the reply comes back as typed. The vote answers the cards.
      expect((await customer({ from, text: 'maria@exemplo.com', id: 'MIX2' })).content).toBe('maria@exemplo.com');
      const vote = await customer({ from, type: 'vote', targetId: sent[2]!.id, options: ['Quero este (Tênis Casual Branco)'] });
      expect(vote.content).toBe('Quero este');
      expect(vote.content_attributes.in_reply_to).toBe(cards);
    } finally {
      await api(daemon, 'POST', `/admin/instances/${key}/settings`, { botOptionsStyle: null });
    }
  }, 60_000);

  it('every request Ponte made was one Chatwoot allows', () => {
    expect(double.violations).toEqual([]);
  });
});
