/** The Chatwoot `source_id`s Ponte writes: `WAID:<id>` on messages relayed from WhatsApp, `PONTE:<id>` on its own replies. */

const WAID_PREFIX = 'WAID:';

/** Marks Ponte's own replies, so they are never read as commands or sent on. */
export const PONTE_SOURCE_PREFIX = 'PONTE:';

/** The `source_id` of a message relayed from WhatsApp: how a lost create is found again, and how Ponte knows its own relays. */
export function waSourceId(waId: string): string {
  return `${WAID_PREFIX}${waId}`;
}

/** The WhatsApp id a `source_id` names, if it is a relayed message's. */
export function waIdOfSourceId(sourceId: string | null | undefined): string | undefined {
  return sourceId?.startsWith(WAID_PREFIX) ? sourceId.slice(WAID_PREFIX.length) : undefined;
}
