/**
 * The start-up check and the connections in Sentinel mode, on a Redis group
 * of the test's own (master, replica, one Sentinel with a password), never
 * the shared test Redis.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRedis, RedisConfigError, resolveRedisTarget } from '../../src/redis/connection.js';
import { freePort } from '../../src/redis/redis-server.js';
import { until } from '../support/daemon.js';
import { startSentinelGroup, type SentinelGroup } from '../support/redis-sentinel.js';
import { startHoldingProxy } from '../support/tcp-proxy.js';

const SENTINEL_PASSWORD = 'sentinel-secret-4711';
const base = {
  CHATWOOT_BASE_URL: 'https://chat.example.com',
  CHATWOOT_API_ACCESS_TOKEN: 'cw-token-123456',
  WEBHOOK_SECRET: 'a-long-webhook-secret',
  SERVER_HOST: '127.0.0.1',
};
const log = createLogger({ level: 'silent' });

let dir: string;
let group: SentinelGroup;
let gonePort: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ponte-sentinel-'));
  gonePort = await freePort();
  // A second group whose master is not running: Sentinel still names its last known address.
  group = await startSentinelGroup({ dir, name: 'ponte-it', sentinelPassword: SENTINEL_PASSWORD, sentinelConf: [`sentinel monitor gone 127.0.0.1 ${gonePort} 1`] });
}, 30_000);

afterAll(async () => {
  await group?.close();
  await rm(dir, { recursive: true, force: true });
});

const configWith = (env: Record<string, string>) => loadConfig({ ...base, ...env });

/** The port of the server `client` is connected to. */
async function serverPort(client: Redis): Promise<number> {
  return Number(/tcp_port:(\d+)/.exec(String(await client.call('INFO', 'server')))?.[1]);
}

async function checkFails(env: Record<string, string>): Promise<string> {
  const err = await resolveRedisTarget(configWith(env), log).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RedisConfigError);
  const message = (err as Error).message;
  expect(message).not.toContain(SENTINEL_PASSWORD);
  return message;
}

describe('Redis behind Sentinel', () => {
  it('finds the master through Sentinel and connects to it', async () => {
    const config = configWith(group.env);
    const target = await resolveRedisTarget(config, log);
    expect(target).toEqual({ kind: 'sentinel', name: 'ponte-it', sentinels: [{ host: '127.0.0.1', port: group.sentinelPort }] });
    const client = createRedis(target, config);
    try {
      expect(await serverPort(client)).toBe(group.nodes[0]!.port);
      expect(await client.set('ponte-it:probe', '1')).toBe('OK');
    } finally {
      client.disconnect();
    }
  });

  it('says what is wrong, never with the password', async () => {
    expect(await checkFails({ ...group.env, REDIS_SENTINEL_NAME: 'nope' })).toMatch(new RegExp(`No Sentinel in REDIS_SENTINELS names a master for "nope" \\(127\\.0\\.0\\.1:${group.sentinelPort} knows no master named "nope"\\)`));
    expect(await checkFails({ ...group.env, REDIS_SENTINEL_PASSWORD: 'wrong-password' })).toMatch(/refused \(WRONGPASS/);
    expect(await checkFails({ REDIS_SENTINELS: group.env.REDIS_SENTINELS, REDIS_SENTINEL_NAME: 'ponte-it' })).toMatch(/refused \(NOAUTH/);
    const nobody = await freePort();
    expect(await checkFails({ ...group.env, REDIS_SENTINELS: `127.0.0.1:${nobody}` })).toMatch(new RegExp(`127\\.0\\.0\\.1:${nobody} did not answer \\(connect ECONNREFUSED`));
    expect(await checkFails({ ...group.env, REDIS_SENTINEL_NAME: 'gone' })).toMatch(new RegExp(`Sentinel names 127\\.0\\.0\\.1:${gonePort} as the master of "gone", but it did not answer`));
    expect(await checkFails({ ...group.env, REDIS_SENTINELS: `127.0.0.1:${nobody},${group.env.REDIS_SENTINELS}`, REDIS_SENTINEL_NAME: 'gone' })).toMatch(/as the master of "gone"/);
  });

  it('moves to the new master as soon as Sentinel switches, before the old one is demoted', async () => {
    const config = configWith(group.env);
    const client = createRedis(await resolveRedisTarget(config, log), config);
    try {
      const before = await serverPort(client);
      const { from, to } = await group.switchMaster({ resumeWhen: async () => (await serverPort(client)) !== before });
      expect([from, to]).toEqual([before, group.nodes[1]!.port]);
      // Sentinel demotes the old master only seconds after the switch: the client left it on Sentinel's word.
      expect(await group.roleOf(from)).toBe('master');
      expect(await serverPort(client)).toBe(to);
      expect(await client.set('ponte-it:after', '1')).toBe('OK');
    } finally {
      client.disconnect();
    }
  }, 60_000);

  // Run last: it kills this group's master.
  it('a connection looking for the master when Sentinel announces the switch keeps looking, and reaches the new master', async () => {
    // The client reaches Sentinel through a proxy that can freeze its next question half-way.
    const proxy = await startHoldingProxy({ host: '127.0.0.1', port: group.sentinelPort });
    const sentinel = (name: string) => new Redis({ port: group.sentinelPort, host: '127.0.0.1', password: SENTINEL_PASSWORD, connectionName: name });
    const watch = sentinel('test-watch');
    const asker = sentinel('test-ask');
    /** Connections subscribed on Sentinel other than the test's own: the client's +switch-master watchers. */
    const watchers = async () => String(await asker.call('CLIENT', 'LIST')).split('\n').filter((l) => / sub=[1-9]/.test(l) && !/ name=test-/.test(l)).length;
    const config = configWith({ ...group.env, REDIS_SENTINELS: `127.0.0.1:${proxy.port}` });
    const client = createRedis(await resolveRedisTarget(config, log), config);
    client.on('error', () => undefined);
    try {
      await group.replicated();
      const before = await serverPort(client);
      await until('the client watching Sentinel for a switch', async () => (await watchers()) > 0 || undefined);
      await watch.subscribe('+switch-master');
      const switched = once(watch, 'message');

      proxy.hold();
      await group.crash(before);
      // The client lost its master and is asking Sentinel (through the held proxy) where the master is.
      await until('the client asking Sentinel for the master', () => Promise.resolve(proxy.waiting() > 0 || undefined));
      await switched;
      // Whatever watched Sentinel for this client has seen the switch (or was gone with its connection).
      await until('no watcher of the client left on Sentinel', async () => (await watchers()) === 0 || undefined);
      proxy.release();

      const promoted = await group.masterPort();
      expect(promoted).not.toBe(before);
      expect(await serverPort(client)).toBe(promoted);
      expect(client.status).toBe('ready');
      await group.restart(before);
    } finally {
      client.disconnect();
      watch.disconnect();
      asker.disconnect();
      await proxy.close();
    }
  }, 60_000);
});
