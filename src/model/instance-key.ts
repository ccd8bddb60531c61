/**
 * Instance keys (`<accountId>-<inboxId>`): building and parsing them.
 *
 * An instance is one WhatsApp number linked to one Chatwoot API inbox. Its key
 * is `<accountId>-<inboxId>` (e.g. `1-12`): in Redis keys, in the inbox
 * webhook URL, in `/global-status`, and as its folder under `sessions/`, so
 * nothing but digits and one dash is ever accepted.
 */
export interface InstanceRef {
  accountId: number;
  inboxId: number;
}

const KEY = /^([1-9]\d{0,9})-([1-9]\d{0,9})$/;

export function instanceKey(ref: InstanceRef): string {
  if (!Number.isSafeInteger(ref.accountId) || ref.accountId < 1 || !Number.isSafeInteger(ref.inboxId) || ref.inboxId < 1) {
    throw new RangeError(`invalid instance ids: account ${ref.accountId}, inbox ${ref.inboxId}`);
  }
  return `${ref.accountId}-${ref.inboxId}`;
}

/** Parses `<accountId>-<inboxId>`; `undefined` for anything else. */
export function parseInstanceKey(key: string): InstanceRef | undefined {
  const m = KEY.exec(key);
  if (!m) return undefined;
  return { accountId: Number(m[1]), inboxId: Number(m[2]) };
}
