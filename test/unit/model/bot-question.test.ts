import { describe, expect, it } from 'vitest';
import { type BotOption, foldAnswer, matchTypedAnswer, matchVote } from '../../../src/model/bot-question.js';

const options: BotOption[] = [
  { title: 'Pix', value: 'pix' },
  { title: 'Cartão de crédito', value: 'credit_card' },
  { title: 'Boleto', value: 'boleto' },
];

describe('matchTypedAnswer', () => {
  it.each([
    ['1', 0],
    ['2', 1],
    [' 3 ', 2],
    ['2.', 1],
    ['2)', 1],
    ['pix', 0],
    ['PIX', 0],
    ['  cartao de CREDITO ', 1],
    ['Cartão   de crédito', 1],
    ['boleto', 2],
  ])('%j chooses option %i', (text, index) => {
    expect(matchTypedAnswer(options, text)).toBe(index);
  });

  it.each([['0'], ['4'], ['22'], [''], ['   '], ['pix ou boleto'], ['quero o 2'], ['cartão']])('%j chooses nothing (it arrives as typed)', (text) => {
    expect(matchTypedAnswer(options, text)).toBeUndefined();
  });

  it('a title two options share chooses neither; their labels and numbers do', () => {
    const twins: BotOption[] = [
      { title: 'Quero este', value: 'A', label: 'Quero este (Azul)' },
      { title: 'Quero este', value: 'B', label: 'Quero este (Branco)' },
    ];
    expect(matchTypedAnswer(twins, 'quero este')).toBeUndefined();
    expect(matchTypedAnswer(twins, 'Quero este (branco)')).toBe(1);
    expect(matchTypedAnswer(twins, '1')).toBe(0);
  });

  it('folds case, accents and spaces', () => {
    expect(foldAnswer('  Ação   RÁPIDA ')).toBe('acao rapida');
  });
});

describe('matchVote', () => {
  it('one selected option, by the text the poll showed', () => {
    expect(matchVote(options, ['Boleto'])).toBe(2);
    expect(matchVote([{ title: 'Quero este', value: 'B', label: 'Quero este (Branco)' }], ['Quero este (Branco)'])).toBe(0);
  });

  it('a removed vote, several options or an unknown one choose nothing', () => {
    expect(matchVote(options, [])).toBeUndefined();
    expect(matchVote(options, ['Pix', 'Boleto'])).toBeUndefined();
    expect(matchVote(options, ['Dinheiro'])).toBeUndefined();
  });
});
