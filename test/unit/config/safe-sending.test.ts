import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.js';
import { normalizeKeyword } from '../../../src/config/schema.js';
import { typingMs } from '../../../src/outbound/safe-sending.js';

const valid = {
  CHATWOOT_BASE_URL: 'https://chat.example.com/',
  CHATWOOT_API_ACCESS_TOKEN: 'cw-token-123456',
  WEBHOOK_SECRET: 'a-long-webhook-secret',
  SERVER_HOST: '127.0.0.1',
};

describe('safe-sending settings', () => {
  it('has the documented defaults', () => {
    const s = loadConfig(valid).safety;
    expect(s).toMatchObject({ newChatsPerHour: 30, sendsPerMinute: 20, spacingMs: { min: 1000, max: 5000 }, lockDefaultMs: 3_600_000, typing: false });
    expect(s.optOutKeywords).toEqual(['SAIR', 'PARAR', 'STOP']);
    expect(s.optOutReply).not.toBe('');
  });

  it('compares opt-out keywords trimmed, without case or accents', () => {
    const s = loadConfig({ ...valid, OPT_OUT_KEYWORDS: 'Não quero, cancelar' }).safety;
    expect(s.optOutKeywords).toEqual(['NAO QUERO', 'CANCELAR']);
    expect(s.optOutKeywords).toContain(normalizeKeyword('  não QUERO '));
    expect(normalizeKeyword('Sáir')).toBe('SAIR');
  });

  it('refuses a spacing whose maximum is below its minimum, and limits of zero', () => {
    try {
      loadConfig({ ...valid, SEND_SPACING_MIN_MS: '3000', SEND_SPACING_MAX_MS: '1000', SENDS_PER_MINUTE: '0' });
      expect.unreachable('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      expect(problems).toContainEqual(expect.stringMatching(/^SEND_SPACING_MAX_MS: must be at least SEND_SPACING_MIN_MS/));
      expect(problems).toContainEqual(expect.stringMatching(/^SENDS_PER_MINUTE: /));
    }
  });

  it('types for 1 to 3 s by the length of the text', () => {
    expect(typingMs('oi')).toBe(1000);
    expect(typingMs('x'.repeat(25))).toBe(1500);
    expect(typingMs('x'.repeat(500))).toBe(3000);
    expect(typingMs(null)).toBe(1000);
  });
});
