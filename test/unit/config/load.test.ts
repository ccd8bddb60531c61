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
    // The default listener (0.0.0.0) is beyond loopback: the admin token is required too.
    expect(problems.find((p) => p.startsWith('ADMIN_TOKEN:'))).toMatch(/required when SERVER_HOST \(0\.0\.0\.0\) is not a loopback address/);
    expect(problems).toHaveLength(4);
  });

  it('needs ADMIN_TOKEN beyond loopback only', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost', '127.0.0.2']) expect(() => loadConfig({ ...valid, SERVER_HOST: host })).not.toThrow();
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'ponte.example.com']) {
      expect(problemsOf({ ...valid, SERVER_HOST: host })).toEqual([expect.stringMatching(/^ADMIN_TOKEN: is required when SERVER_HOST/)]);
    }
    expect(loadConfig({ ...valid, SERVER_HOST: '0.0.0.0', ADMIN_TOKEN: 'admin-token-0123456789' }).auth.adminToken).toBe('admin-token-0123456789');
  });

  it('gives every token one role and at least 16 characters', () => {
    expect([...problemsOf({ ...valid, ADMIN_TOKEN: 'short', STATUS_TOKEN: 'tiny' })].sort()).toEqual(['ADMIN_TOKEN: must be at least 16 characters', 'STATUS_TOKEN: must be at least 16 characters']);
    expect(problemsOf({ ...valid, ADMIN_TOKEN: 'same-token-0123456789', STATUS_TOKEN: 'same-token-0123456789' })).toEqual(['STATUS_TOKEN: must differ from ADMIN_TOKEN (each token has one role)']);
    expect(problemsOf({ ...valid, ADMIN_TOKEN: valid.WEBHOOK_SECRET })).toEqual(['ADMIN_TOKEN: must differ from WEBHOOK_SECRET (each token has one role)']);
  });

  it('reads agent e-mails, attachment hosts and the signature rule', () => {
    const config = loadConfig({ ...valid, WEBHOOK_AUTHORIZED_AGENT_EMAILS: 'Ana@Example.com, ops@example.com', OUTBOUND_MEDIA_HOSTS: '*.s3.amazonaws.com, files.example.com:9000', WEBHOOK_REQUIRE_SIGNATURE: 'false' });
    expect(config.webhook.authorizedAgentEmails).toEqual(['ana@example.com', 'ops@example.com']);
    expect(config.outbound.mediaHosts).toEqual(['*.s3.amazonaws.com', 'files.example.com:9000']);
    expect(config.webhook.requireSignature).toBe(false);
    expect(loadConfig(valid).webhook.requireSignature).toBe(true);
    expect(problemsOf({ ...valid, OUTBOUND_MEDIA_HOSTS: 'http://evil/', WEBHOOK_AUTHORIZED_AGENT_EMAILS: 'not-an-email' }).map((p) => p.split(':')[0]).sort()).toEqual(['OUTBOUND_MEDIA_HOSTS', 'WEBHOOK_AUTHORIZED_AGENT_EMAILS']);
  });

  it('lists bad values together with missing ones', () => {
    const problems = problemsOf({
      CHATWOOT_BASE_URL: 'ftp://nope',
      SERVER_PORT: '70000',
      CHATWOOT_QUEUE_CONCURRENCY: 'many',
      WHATSAPP_DRIVER: 'telegram',
      REDIS_URL: 'localhost:6379',
      WEBHOOK_SECRET: 'short',
      SERVER_HOST: '127.0.0.1',
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

describe('Redis behind Sentinel', () => {
  it('reads a list of Sentinels with the master group name', () => {
    const config = loadConfig({ ...valid, REDIS_SENTINELS: 'sentinel-1.internal:26379, 10.0.0.7:26380,[::1]:26381', REDIS_SENTINEL_NAME: 'ponte-main', REDIS_SENTINEL_PASSWORD: 'sentinel-pass' });
    expect(config.redis.sentinel).toEqual({
      addresses: [
        { host: 'sentinel-1.internal', port: 26379 },
        { host: '10.0.0.7', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      name: 'ponte-main',
      password: 'sentinel-pass',
    });
    expect(config.redis.url).toBeUndefined();
    expect(loadConfig(valid).redis.sentinel).toBeUndefined();
  });

  it('needs the master group name', () => {
    expect(problemsOf({ ...valid, REDIS_SENTINELS: '127.0.0.1:26379' })).toEqual([expect.stringMatching(/^REDIS_SENTINEL_NAME: is required when REDIS_SENTINELS is set/)]);
  });

  it('refuses REDIS_URL together with REDIS_SENTINELS', () => {
    expect(problemsOf({ ...valid, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_SENTINELS: '127.0.0.1:26379', REDIS_SENTINEL_NAME: 'mymaster' })).toEqual([expect.stringMatching(/^REDIS_SENTINELS: cannot be combined with REDIS_URL/)]);
  });

  it('names each bad entry, and Sentinel settings without Sentinels', () => {
    expect(problemsOf({ ...valid, REDIS_SENTINELS: '127.0.0.1:26379,sentinel-2,host:70000', REDIS_SENTINEL_NAME: 'mymaster' })).toEqual([
      'REDIS_SENTINELS: must be host:port entries, comma-separated (IPv6 in brackets: [::1]:26379) (entry 2)',
      'REDIS_SENTINELS: must have a port from 1 to 65535 (entry 3)',
    ]);
    expect(problemsOf({ ...valid, REDIS_SENTINEL_NAME: 'mymaster', REDIS_SENTINEL_PASSWORD: 'x' })).toEqual([
      'REDIS_SENTINEL_NAME: applies only with REDIS_SENTINELS, which is not set',
      'REDIS_SENTINEL_PASSWORD: applies only with REDIS_SENTINELS, which is not set',
    ]);
    expect(problemsOf({ ...valid, REDIS_SENTINELS: '127.0.0.1:26379', REDIS_SENTINEL_NAME: 'two words' })).toEqual([expect.stringMatching(/^REDIS_SENTINEL_NAME: must be one word/)]);
  });
});

describe('redactConfig', () => {
  it('hides every secret and the Redis password', () => {
    const config = loadConfig({
      ...valid,
      STATUS_TOKEN: 'status-token-xyz-0123456',
      ADMIN_TOKEN: 'admin-token-xyz-0123456',
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

  it('hides the Sentinel password', () => {
    const config = loadConfig({ ...valid, REDIS_SENTINELS: 'sentinel.internal:26379', REDIS_SENTINEL_NAME: 'mymaster', REDIS_SENTINEL_PASSWORD: 'sentinel-hunter4', REDIS_PASSWORD: 'hunter5' });
    const text = JSON.stringify(redactConfig(config));
    expect(text).not.toContain('sentinel-hunter4');
    expect(text).not.toContain('hunter5');
    expect(text).toContain('sentinel.internal');
  });
});
