import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.js';

const valid = {
  CHATWOOT_BASE_URL: 'https://chat.example.com/',
  CHATWOOT_API_ACCESS_TOKEN: 'cw-token-123456',
  WEBHOOK_SECRET: 'a-long-webhook-secret',
  SERVER_HOST: '127.0.0.1',
};

describe('BOT_OPTIONS_STYLE', () => {
  it('is a numbered list in text by default, a poll when asked', () => {
    expect(loadConfig(valid).bots.optionsStyle).toBe('text');
    expect(loadConfig({ ...valid, BOT_OPTIONS_STYLE: 'poll' }).bots.optionsStyle).toBe('poll');
  });

  it('refuses anything else, naming the choices', () => {
    try {
      loadConfig({ ...valid, BOT_OPTIONS_STYLE: 'buttons' });
      expect.unreachable('BOT_OPTIONS_STYLE=buttons was accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toEqual([expect.stringMatching(/^BOT_OPTIONS_STYLE: .*text.*poll/)]);
    }
  });
});
