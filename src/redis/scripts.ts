/** Lua scripts run by SHA: the text reaches Redis once per connection, not with every call as `eval` sends it. */
import type { Redis } from 'ioredis';

export type ScriptArg = string | number | Buffer;

const known = new Map<string, string>();

/**
 * A named Lua script, run through ioredis' `defineCommand`: EVALSHA, with
 * one EVAL when Redis does not know the script yet (after a restart, on a
 * new connection). `eval` would send the whole text on every call, and a
 * `multi()` costs more in ioredis than the script that replaces it (each one
 * copies every script defined on the connection, BullMQ's included).
 */
export class LuaScript<R = unknown> {
  readonly name: string;

  constructor(
    name: string,
    readonly lua: string,
  ) {
    this.name = `ponte${name}`;
    const other = known.get(this.name);
    if (other !== undefined && other !== lua) throw new Error(`two Lua scripts are named ${name}`);
    known.set(this.name, lua);
  }

  run(redis: Redis, keys: readonly string[], args: readonly ScriptArg[]): Promise<R> {
    const commands = redis as unknown as Record<string, ((...a: ScriptArg[]) => Promise<R>) | undefined>;
    let command = commands[this.name];
    if (!command) {
      redis.defineCommand(this.name, { lua: this.lua });
      command = commands[this.name]!;
    }
    return command.call(redis, keys.length, ...keys, ...args);
  }
}
