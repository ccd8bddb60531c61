import { describe, expect, it } from 'vitest';
import { markdownToWhatsApp } from '../../../src/outbound/markdown.js';

describe('markdownToWhatsApp', () => {
  it.each([
    ['**Olá**, tudo bem?', '*Olá*, tudo bem?'],
    ['isso é *importante*', 'isso é _importante_'],
    ['isso é _importante_', 'isso é _importante_'],
    ['~~preço antigo~~ R$ 10', '~preço antigo~ R$ 10'],
    ['veja [o site](https://loja.example.com/x)', 'veja o site (https://loja.example.com/x)'],
    ['https://loja.example.com', 'https://loja.example.com'],
    ['# Pedido 123', '*Pedido 123*'],
    ['* um\n* dois', '- um\n- dois'],
    ['- um\n- dois', '- um\n- dois'],
    ['linha\\\nseguinte', 'linha\nseguinte'],
    ['use `**isto**` assim', 'use `**isto**` assim'],
    ['```\n**bloco**\n```', '```\n**bloco**\n```'],
    ['**negrito** e *itálico* juntos', '*negrito* e _itálico_ juntos'],
    ['2 * 3 = 6', '2 * 3 = 6'],
  ])('%j → %j', (md, wa) => {
    expect(markdownToWhatsApp(md)).toBe(wa);
  });
});
