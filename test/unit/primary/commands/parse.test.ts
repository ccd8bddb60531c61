import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../../../src/primary/commands/parse.js';

describe('parseCommand', () => {
  it.each([
    ['erga 12 3', { kind: 'link', inboxId: 12, accountId: 3 }],
    ['  ERGA   12   3  ', { kind: 'link', inboxId: 12, accountId: 3 }],
    ['Erga 12', { kind: 'link', inboxId: 12, accountId: 7 }],
    ['erga status', { kind: 'status' }],
    ['erga STATUS', { kind: 'status' }],
    ['erga help', { kind: 'help' }],
    ['erga ajuda', { kind: 'help' }],
    ['erga stop 12', { kind: 'stop', inboxId: 12 }],
    ['erga logout 12', { kind: 'logout', inboxId: 12 }],
    ['erga replay 12', { kind: 'replay', inboxId: 12 }],
    ['erga import 12', { kind: 'import', inboxId: 12 }],
    ['erga IMPORT 12 30', { kind: 'import', inboxId: 12, days: 30 }],
    ['erga import 12 1', { kind: 'import', inboxId: 12, days: 1 }],
    ['erga contacts 12', { kind: 'contacts', inboxId: 12 }],
    ['erga code 12 3 +55 (21) 99876-5432', { kind: 'code', inboxId: 12, accountId: 3, phone: '5521998765432' }],
    ['erga new Loja 1', { kind: 'new', name: 'Loja', accountId: 1 }],
    ['erga NEW  Loja   Centro  3', { kind: 'new', name: 'Loja Centro', accountId: 3 }],
    ['erga new Loja', { kind: 'new', name: 'Loja', accountId: 7 }],
    ['erga new 2024', { kind: 'new', name: '2024', accountId: 7 }],
    ['erga new "Loja 2" 1', { kind: 'new', name: 'Loja 2', accountId: 1 }],
    ['erga new “Filial 12”', { kind: 'new', name: 'Filial 12', accountId: 7 }],
  ])('%j → %j', (text, expected) => {
    expect(parseCommand(text, 'erga', 7)).toEqual(expected);
  });

  it.each([
    ['erga'],
    ['erga 0 3'],
    ['erga -1 3'],
    ['erga 12 abc'],
    ['erga 12 3 4'],
    ['erga 1.5 3'],
    ['erga 99999999999 3'],
    ['erga stop'],
    ['erga stop x'],
    ['erga stop 1 2'],
    ['erga import'],
    ['erga import x'],
    ['erga import 12 0'],
    ['erga import 12 31'],
    ['erga import 12 7d'],
    ['erga contacts'],
    ['erga contacts 12 1'],
    ['erga import 12 7 1'],
    ['erga code 12 3'],
    ['erga code 12 3 123'],
    ['erga status now'],
    ['erga launch 12'],
    ['erga new'],
    ['erga new "" 1'],
    ['erga new "Loja 1'],
    ['erga new "Loja" 1 2'],
    ['erga new "Loja" x'],
    [`erga new ${'x'.repeat(101)} 1`],
  ])('%j is a command with a reason why it is wrong', (text) => {
    const c = parseCommand(text, 'erga', 7);
    expect(c?.kind).toBe('invalid');
    expect(c && 'reason' in c ? c.reason : '').toMatch(/expected|unknown|not a positive|takes nothing|at most/);
  });

  it('without a default account, the account id is required', () => {
    expect(parseCommand('erga 12', 'erga')).toMatchObject({ kind: 'invalid', reason: expect.stringContaining('no default account') as unknown });
    expect(parseCommand('erga new Loja', 'erga')).toMatchObject({ kind: 'invalid', reason: expect.stringContaining('no default account') as unknown });
  });

  it.each([[''], [null], ['hello erga 12 3'], ['ergastatus'], ['bom dia']])('%j is not a command', (text) => {
    expect(parseCommand(text, 'erga', 7)).toBeUndefined();
  });

  it('uses the configured keyword', () => {
    expect(parseCommand('ponte 5 1', 'ponte')).toEqual({ kind: 'link', inboxId: 5, accountId: 1 });
    expect(parseCommand('erga 5 1', 'ponte')).toBeUndefined();
  });
});
