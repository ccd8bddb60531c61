import { describe, expect, it } from 'vitest';
import { brazilianVariants, canonicalBrazilian, digitsOf, toE164 } from '../../../src/lib/phone.js';

describe('digitsOf', () => {
  it.each([
    ['5511987654321@s.whatsapp.net', '5511987654321'],
    ['5511987654321:12@s.whatsapp.net', '5511987654321'],
    ['218512345678901@lid', '218512345678901'],
    ['+55 (11) 98765-4321', '5511987654321'],
  ])('%s → %s', (input, digits) => {
    expect(digitsOf(input)).toBe(digits);
  });
});

describe('toE164', () => {
  it('prefixes valid numbers and refuses what Chatwoot would refuse', () => {
    expect(toE164('5511987654321')).toBe('+5511987654321');
    expect(toE164('0511987654321')).toBeUndefined();
    expect(toE164('1234567890123456')).toBeUndefined();
    expect(toE164('')).toBeUndefined();
  });
});

describe('Brazilian ninth digit', () => {
  it.each([
    // mobile without the ninth digit → gains it
    ['552198765432', '5521998765432', ['5521998765432', '552198765432']],
    // mobile with it → unchanged
    ['5521998765432', '5521998765432', ['5521998765432', '552198765432']],
    ['5511966660000', '5511966660000', ['5511966660000', '551166660000']],
    // landline (subscriber starts with 2-5) → one form
    ['551132654321', '551132654321', ['551132654321']],
    // other countries → one form
    ['351912345678', '351912345678', ['351912345678']],
    ['14155550123', '14155550123', ['14155550123']],
    // area codes never contain a zero
    ['550198765432', '550198765432', ['550198765432']],
  ])('%s → canonical %s, variants %j', (digits, canonical, variants) => {
    expect(canonicalBrazilian(digits)).toBe(canonical);
    expect(brazilianVariants(digits)).toEqual(variants);
  });

  it('both forms of one number share their canonical form and variants', () => {
    expect(canonicalBrazilian('552198765432')).toBe(canonicalBrazilian('5521998765432'));
    expect(brazilianVariants('552198765432')).toEqual(brazilianVariants('5521998765432'));
  });
});
