import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactConfig } from '../../../src/config/load.js';

const valid = {
  CHATWOOT_BASE_URL: 'https://chat.example.com/',
  CHATWOOT_API_ACCESS_TOKEN: 'cw-token-123456',
  WEBHOOK_SECRET: 'a-long-webhook-secret',
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

describe('loadConfig', () => {
  it('names every missing required variable at once', () => {
    const problems = problemsOf({});
    expect(problems).toEqual(
      expect.arrayContaining([
        'CHATWOOT_BASE_URL: is required',
        'CHATWOOT_API_ACCESS_TOKEN: is required',
        'WEBHOOK_SECRET: is required',
      ]),
    );
    expect(problems).toHaveLength(3);
  });

  it('lists bad values together with missing ones', () => {
    const problems = problemsOf({
      CHATWOOT_BASE_URL: 'ftp://nope',
      SERVER_PORT: '70000',
      CHATWOOT_QUEUE_CONCURRENCY: 'many',
      WHATSAPP_DRIVER: 'telegram',
      REDIS_URL: 'localhost:6379',
      WEBHOOK_SECRET: 'short',
    });
    const names = problems.map((p) => p.split(':')[0]);
    expect(new Set(names)).toEqual(
      new Set([
        'CHATWOOT_BASE_URL',
        'CHATWOOT_API_ACCESS_TOKEN',
        'SERVER_PORT',
        'CHATWOOT_QUEUE_CONCURRENCY',
        'WHATSAPP_DRIVER',
        'REDIS_URL',
        'WEBHOOK_SECRET',
      ]),
    );
  });

  it('applies defaults, compiles units and freezes the result', () => {
    const config = loadConfig({ ...valid, WEBHOOK_AUTHORIZED_PHONE_NUMBERS: '+55 (21) 99876-5432, 5511912345678', WEBHOOK_COMMAND_KEYWORD: 'ERGA' });
    expect(config.chatwoot.baseUrl).toBe('https://chat.example.com');
    expect(config.server.port).toBe(3000);
    expect(config.redis.prefix).toBe('ponte:');
    expect(config.queue.attempts).toBe(5);
    expect(config.whatsapp.sessionsDir).toBe('sessions');
    expect(config.webhook.commandKeyword).toBe('erga');
    expect(config.webhook.authorizedPhones).toEqual(['5521998765432', '5511912345678']);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.chatwoot)).toBe(true);
    expect(() => {
      (config.chatwoot as { timeoutMs: number }).timeoutMs = 1;
    }).toThrow(TypeError);
  });

  it('treats empty variables as unset', () => {
    const config = loadConfig({ ...valid, SERVER_PORT: '', STATUS_TOKEN: '' });
    expect(config.server.port).toBe(3000);
    expect(config.auth.statusToken).toBeUndefined();
  });
});

describe('redactConfig', () => {
  it('hides every secret and the Redis password', () => {
    const config = loadConfig({
      ...valid,
      STATUS_TOKEN: 'status-token-xyz',
      ADMIN_TOKEN: 'admin-token-xyz',
      REDIS_URL: 'redis://user:hunter2@redis.internal:6379/0',
      REDIS_PASSWORD: 'hunter3',
      CHATWOOT_ACCOUNT_WEBHOOK_SECRET: 'account-webhook-secret',
    });
    const text = JSON.stringify(redactConfig(config));
    for (const secret of ['cw-token-123456', 'a-long-webhook-secret', 'status-token-xyz', 'admin-token-xyz', 'hunter2', 'hunter3', 'account-webhook-secret']) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('redis.internal');
  });
});
