/** The original time of an imported message, as the short prefix its content starts with (pure). */

/**
 * `[HH:MM]` for a message of today, `[YYYY-MM-DD HH:MM]` for an older one,
 * in `timeZone` (the host's own by default). Chatwoot shows every message at
 * the time it was created and keeps `external_created_at` out of sight
 * (chatwoot#15915), so an imported message says when it was written.
 */
export function timePrefix(timestampS: number, nowMs: number, timeZone?: string): string {
  const at = parts(new Date(timestampS * 1000), timeZone);
  const today = parts(new Date(nowMs), timeZone);
  const time = `${at.hour}:${at.minute}`;
  return at.date === today.date ? `[${time}]` : `[${at.date} ${time}]`;
}

/** One formatter per time zone ('' for the host's): building one costs more than formatting. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function parts(d: Date, timeZone: string | undefined): { date: string; hour: string; minute: string } {
  let f = formatters.get(timeZone ?? '');
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { ...(timeZone ? { timeZone } : {}), year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone ?? '', f);
  }
  const p = Object.fromEntries(f.formatToParts(d).map((x) => [x.type, x.value]));
  return { date: `${p.year}-${p.month}-${p.day}`, hour: p.hour ?? '00', minute: p.minute ?? '00' };
}

/** `content` with the prefix in front (the prefix alone for an attachment without a caption). */
export function withTimePrefix(content: string | undefined, prefix: string): string {
  return content ? `${prefix} ${content}` : prefix;
}
