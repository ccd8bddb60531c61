import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactConfig } from '../../../src/config/load.js';

const valid = {
  CHATWOOT_BASE_URL: 'https://chat.example.com/',
  CHATWOOT_API_ACCESS_TOKEN: 'cw-token-123456',
  WEBHOOK_SECRET: 'a-long-webhook-secret',
  SERVER_HOST: '127.0.0.1',
};

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('send API settings', () => {
  it('SEND_TOKEN: unset by default, at least 16 characters, a role of its own, never logged', () => {
    expect(loadConfig(valid).auth.sendToken).toBeUndefined();
    expect(problemsOf({ ...valid, SEND_TOKEN: 'short' })).toEqual([expect.stringMatching(/^SEND_TOKEN: must be at least 16 characters/)]);
    expect(problemsOf({ ...valid, ADMIN_TOKEN: 'same-token-0123456789', SEND_TOKEN: 'same-token-0123456789' })).toEqual(['SEND_TOKEN: must differ from ADMIN_TOKEN (each token has one role)']);
    const config = loadConfig({ ...valid, SEND_TOKEN: 'send-token-xyz-0123456' });
    expect(config.auth.sendToken).toBe('send-token-xyz-0123456');
    expect(JSON.stringify(redactConfig(config))).not.toContain('send-token-xyz');
  });

  it('SANDBOX_NOT_ON_WHATSAPP: comma-separated numbers, as digits', () => {
    expect(loadConfig(valid).whatsapp.sandboxNotOnWhatsApp).toEqual([]);
    expect(loadConfig({ ...valid, SANDBOX_NOT_ON_WHATSAPP: '+55 21 97777-6666, 14155550100' }).whatsapp.sandboxNotOnWhatsApp).toEqual(['5521977776666', '14155550100']);
  });
});
