import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { configuredRedisTarget, describeRedisTarget, reconnectOnReadOnly, redisTargetEnv } from '../../../src/redis/connection.js';

const valid = {
  CHATWOOT_BASE_URL: 'https://chat.example.com/',
  CHATWOOT_API_ACCESS_TOKEN: 'cw-token-123456',
  WEBHOOK_SECRET: 'a-long-webhook-secret',
  SERVER_HOST: '127.0.0.1',
};

describe('Redis target', () => {
  it('comes from REDIS_SENTINELS or REDIS_URL, and none without either', () => {
    const sentinel = configuredRedisTarget(loadConfig({ ...valid, REDIS_SENTINELS: '10.0.0.7:26379,[::1]:26380', REDIS_SENTINEL_NAME: 'mymaster' }));
    expect(sentinel).toEqual({ kind: 'sentinel', name: 'mymaster', sentinels: [{ host: '10.0.0.7', port: 26379 }, { host: '::1', port: 26380 }] });
    expect(configuredRedisTarget(loadConfig({ ...valid, REDIS_URL: 'redis://redis.internal:6380/2' }))).toEqual({ kind: 'url', url: 'redis://redis.internal:6380/2' });
    expect(configuredRedisTarget(loadConfig(valid))).toBeUndefined();
  });

  it('reaches a worker through its environment unchanged', () => {
    const targets = [
      { kind: 'url', url: 'redis://127.0.0.1:6390' },
      { kind: 'sentinel', name: 'mymaster', sentinels: [{ host: '10.0.0.7', port: 26379 }, { host: '::1', port: 26380 }] },
    ] as const;
    for (const target of targets) expect(configuredRedisTarget(loadConfig({ ...valid, ...redisTargetEnv(target) }))).toEqual(target);
  });

  it('is described without credentials', () => {
    expect(describeRedisTarget({ kind: 'url', url: 'redis://user:hunter2@redis.internal:6379/0' })).toBe('redis://redis.internal:6379');
    expect(describeRedisTarget({ kind: 'sentinel', name: 'mymaster', sentinels: [{ host: '10.0.0.7', port: 26379 }] })).toBe('master "mymaster" through Sentinel 10.0.0.7:26379');
  });
});

describe('reconnectOnReadOnly', () => {
  it('reconnects and resends a command a replica refused, also inside a script', () => {
    expect(reconnectOnReadOnly(new Error("READONLY You can't write against a read only replica."))).toBe(2);
    expect(reconnectOnReadOnly(new Error("ERR Error running script (call to f_1): @user_script:1: @user_script: 1: -READONLY You can't write against a read only replica."))).toBe(2);
    expect(reconnectOnReadOnly(new Error('NOREPLICAS Not enough good replicas to write.'))).toBe(false);
    expect(reconnectOnReadOnly(new Error('ERR wrong number of arguments'))).toBe(false);
  });
});
