/**
 * Pending commands on several hosts: at start-up a host resumes its own and
 * those of hosts that died, never one a live host is still running, and a
 * dead host's command is resumed by one host only.
 */
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CommandIntake } from '../../src/primary/commands/command-intake.js';
import type { Decision } from '../../src/primary/commands/authorize.js';
import { createLogger } from '../../src/observability/logger.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

let redis: Redis;
let keys: RedisKeys;
let prefix: string;
const log = createLogger({ level: 'silent' });

beforeEach(() => {
  redis = testRedis();
  prefix = randomPrefix();
  keys = new RedisKeys(prefix);
});

afterEach(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('CommandIntake on several hosts', () => {
  it('resumes its own and dead hosts\' commands once, never a live host\'s', async () => {
    const alive = new Set(['a', 'b', 'c']);
    const ran: string[] = [];
    const intake = (hostId: string, authorize: () => Promise<Decision>) =>
      new CommandIntake({ redis, keys, log, hostId, hostAlive: (id) => Promise.resolve(alive.has(id)), authorize, handle: () => Promise.resolve() });
    const ignored = (host: string): Promise<Decision> => {
      ran.push(host);
      return Promise.resolve({ act: false, reason: 'test', log: 'debug' });
    };
    // Host a accepted a command and is still running it.
    const a = intake('a', () => new Promise<Decision>(() => undefined));
    expect(await a.accept({ id: 'message_created:1', payload: { id: 1 }, signed: false, acceptedAtMs: Date.now() })).toBe(true);

    expect(await intake('b', () => ignored('b')).resume()).toBe(0);
    expect(ran).toEqual([]);

    // a dies: the next host to start resumes it, and only that one.
    alive.delete('a');
    expect(await intake('b', () => ignored('b')).resume()).toBe(1);
    expect(await intake('c', () => ignored('c')).resume()).toBe(0);
    await until(() => ran.length > 0);
    expect(ran).toEqual(['b']);
    await until(async () => (await redis.hlen(`${prefix}cmd:pending`)) === 0);
  });
});

async function until(ok: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await ok())) await new Promise((r) => setTimeout(r, 10));
}
