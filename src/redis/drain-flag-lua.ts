/** The Lua functions of a list's drain flag, shared by the inbound chats' and the outbound conversations' scripts. */

/**
 * Under a store's `base`: `sched:<id>` is list `id`'s drain flag, holding the
 * generation (`g<n>`, from the counter `gen`) its drain job's id carries, and
 * `pending` is the set of lists holding events.
 *
 * - `raise_flag(base, id)`: raises the flag with a new generation and returns
 *   it, or returns false when it is up already (a job drains the list);
 * - `schedule_pending(base)`: every pending list with its flag's generation
 *   (raised where it was down), as a flat list `{id, generation, …}`.
 */
export const DRAIN_FLAG_FN = `
local function raise_flag(base, id)
  if redis.call('EXISTS', base .. 'sched:' .. id) == 1 then return false end
  local gen = 'g' .. redis.call('INCR', base .. 'gen')
  redis.call('SET', base .. 'sched:' .. id, gen)
  return gen
end
local function schedule_pending(base)
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', base .. 'pending')) do
    local gen = raise_flag(base, id) or redis.call('GET', base .. 'sched:' .. id)
    table.insert(out, id)
    table.insert(out, gen)
  end
  return out
end
`;
