/** Inbox signing secrets: a failed read is retried until it succeeds, and the last secret read survives a restart. */
import { afterAll, describe, expect, it } from 'vitest';
import type { ChatwootClientLike, CwInbox } from '../../src/chatwoot/types.js';
import { ChatwootUnavailableError } from '../../src/chatwoot/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { InboxSecrets } from '../../src/primary/inbox-secrets.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { until } from '../support/daemon.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const redis = testRedis();
const prefix = randomPrefix();
const keys = new RedisKeys(prefix);
const log = createLogger({ level: 'silent' });

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

/** A Chatwoot whose inbox read fails `failures` times, then shows `secret`. */
function chatwoot(state: { failures: number; secret: string; reads: number }): ChatwootClientLike {
  return {
    getInbox: (): Promise<CwInbox> => {
      state.reads += 1;
      if (state.failures > 0) {
        state.failures -= 1;
        return Promise.reject(new ChatwootUnavailableError('Chatwoot GET inbox: connection failed (ECONNREFUSED)', { method: 'GET', route: '/inboxes/{id}' }));
      }
      return Promise.resolve({ id: 12, name: 'Vendas', channel_type: 'Channel::Api', secret: state.secret });
    },
  } as unknown as ChatwootClientLike;
}

describe('InboxSecrets', () => {
  it('keeps reading until Chatwoot answers, and keeps the secret in Redis for the next start', async () => {
    const state = { failures: 3, secret: 'first-secret', reads: 0 };
    const secrets = new InboxSecrets({ chatwoot: chatwoot(state), redis, keys, log, retryDelayMs: { min: 20, max: 50 } });
    await secrets.load(['3-12']);
    expect(secrets.current('3-12')).toBeUndefined();
    await until('the secret read after the outage', () => Promise.resolve(secrets.current('3-12')));
    expect(secrets.current('3-12')).toBe('first-secret');
    expect(state.reads).toBe(4);
    secrets.close();

    // A restart while Chatwoot is down: the kept secret verifies at once.
    const down = { failures: 1_000, secret: 'unused', reads: 0 };
    const again = new InboxSecrets({ chatwoot: chatwoot(down), redis, keys, log, retryDelayMs: { min: 1000, max: 1000 } });
    await again.load(['3-12']);
    expect(again.current('3-12')).toBe('first-secret');
    again.close();
  });

  it('re-reads after a mismatch at most once per interval, returning only a changed secret', async () => {
    const state = { failures: 0, secret: 'before-reset', reads: 0 };
    const secrets = new InboxSecrets({ chatwoot: chatwoot(state), redis, keys, log, refreshEveryMs: 60_000 });
    await secrets.load(['3-13']);
    await until('the first read', () => Promise.resolve(secrets.current('3-13')));
    state.secret = 'after-reset';
    expect(await secrets.refresh('3-13')).toBe('after-reset');
    expect(secrets.current('3-13')).toBe('after-reset');
    // Within the interval a mismatch reads nothing more (a forger cannot make Ponte hammer Chatwoot).
    const reads = state.reads;
    expect(await secrets.refresh('3-13')).toBeUndefined();
    expect(state.reads).toBe(reads);
    secrets.close();
  });
});
