import { describe, expect, it } from 'vitest';
import { instanceKey, parseInstanceKey } from '../../../src/model/instance-key.js';

describe('instance key', () => {
  it('is <accountId>-<inboxId>', () => {
    expect(instanceKey({ accountId: 1, inboxId: 12 })).toBe('1-12');
    expect(parseInstanceKey('3-45')).toEqual({ accountId: 3, inboxId: 45 });
  });

  it.each(['', '1', '1-', '-1', '0-1', '1-0', '01-2', '1-2-3', '../1-2', '1-2/..', '1_2', 'a-b', '1-2 ', '12345678901-1'])('refuses %j', (key) => {
    expect(parseInstanceKey(key)).toBeUndefined();
  });

  it('refuses ids that are not positive integers', () => {
    expect(() => instanceKey({ accountId: 0, inboxId: 1 })).toThrow(RangeError);
    expect(() => instanceKey({ accountId: 1.5, inboxId: 1 })).toThrow(RangeError);
  });
});
