import type { TestProject } from 'vitest/node';
import { redisAnswers, spawnRedisServer, type SpawnedRedis } from '../../src/redis/redis-server.js';

/**
 * Tests run on a real Redis: the machine's own on 127.0.0.1:6379 when it
 * answers, otherwise a `redis-server` from PATH on a free port, started here
 * and stopped at the end. Each test file then works under its own random key
 * prefix (see `redis.ts`), so nothing is flushed and files cannot collide.
 */
let spawned: SpawnedRedis | undefined;

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export async function setup(project: TestProject): Promise<void> {
  const local = 'redis://127.0.0.1:6379';
  if (await redisAnswers(local, 1000)) {
    project.provide('redisUrl', local);
    return;
  }
  try {
    spawned = await spawnRedisServer({ dataDir: `/tmp/ponte-test-redis-${process.pid}`, appendOnly: false });
  } catch (err) {
    throw new Error(
      'The tests need Redis: nothing answers on 127.0.0.1:6379 and redis-server is not on PATH. ' +
        'Install it (apt-get install redis-server) or start one on 127.0.0.1:6379.',
      { cause: err },
    );
  }
  project.provide('redisUrl', spawned.url);
}

export async function teardown(): Promise<void> {
  await spawned?.stop();
}
