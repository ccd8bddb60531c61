import { describe, expect, it } from 'vitest';
import { normalizePhone } from '../../../src/lib/phone.js';

describe('normalizePhone', () => {
  it('gives a Brazilian mobile its ninth digit, written any way', () => {
    for (const v of ['552198765432', '+55 21 9876-5432', '+55 (21) 9876-5432', '0055 21 9876 5432']) expect(normalizePhone(v)).toBe('5521998765432');
    expect(normalizePhone('+55 (21) 99876-5432')).toBe('5521998765432');
    expect(normalizePhone('5521998765432')).toBe('5521998765432');
  });

  it('keeps Brazilian landlines and other countries as they are', () => {
    expect(normalizePhone('+55 21 3456-7890')).toBe('552134567890');
    expect(normalizePhone('+1 (415) 555-0100')).toBe('14155550100');
    expect(normalizePhone('+44 20 7946 0958')).toBe('442079460958');
  });

  it('refuses what cannot be an international number', () => {
    for (const v of ['', 'abc', '+55 21 9876-543x', '12345', '0123456789', '+1234567890123456', '21 98765 4321 ext 5']) expect(normalizePhone(v)).toBeUndefined();
  });
});
