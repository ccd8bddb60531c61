/** The time prefix of imported history messages: time only today, date and time before, in the given time zone. */
import { describe, expect, it } from 'vitest';
import { timePrefix, withTimePrefix } from '../../../src/inbound/history-time.js';

describe('timePrefix', () => {
  // 2026-03-10 15:04:00 UTC.
  const now = Date.UTC(2026, 2, 10, 15, 4);

  it('shows the time alone for a message of today, in the time zone', () => {
    expect(timePrefix(Date.UTC(2026, 2, 10, 13, 5) / 1000, now, 'UTC')).toBe('[13:05]');
    expect(timePrefix(Date.UTC(2026, 2, 10, 13, 5) / 1000, now, 'America/Sao_Paulo')).toBe('[10:05]');
  });

  it('adds the date for an older message, and the day is the time zone\'s', () => {
    expect(timePrefix(Date.UTC(2026, 2, 3, 9, 0) / 1000, now, 'UTC')).toBe('[2026-03-03 09:00]');
    // 01:30 UTC on the 10th is still the 9th in São Paulo.
    expect(timePrefix(Date.UTC(2026, 2, 10, 1, 30) / 1000, now, 'America/Sao_Paulo')).toBe('[2026-03-09 22:30]');
    expect(timePrefix(Date.UTC(2026, 2, 10, 1, 30) / 1000, now, 'UTC')).toBe('[01:30]');
  });

  it('uses 24-hour time with two digits', () => {
    expect(timePrefix(Date.UTC(2026, 2, 10, 0, 7) / 1000, now, 'UTC')).toBe('[00:07]');
  });

  it('goes in front of the content, or stands alone for an attachment without caption', () => {
    expect(withTimePrefix('oi', '[10:05]')).toBe('[10:05] oi');
    expect(withTimePrefix(undefined, '[10:05]')).toBe('[10:05]');
    expect(withTimePrefix('', '[10:05]')).toBe('[10:05]');
  });
});
