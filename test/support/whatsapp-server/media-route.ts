/**
 * Routes downloads of media that WhatsApp names by a `directPath` only (history-sync
 * blobs) to the loopback media host.
 *
 * A `HistorySyncNotification` has no `url` field, so rc14 always downloads its blob
 * from `https://mmg.whatsapp.net<directPath>` (`downloadContentFromMessage`, with
 * the default media host). The loopback server therefore gives such media a
 * `directPath` of the form `.invalid/loopback/<port>/<path>`: rc14 turns it into
 * `https://mmg.whatsapp.net.invalid/loopback/<port>/<path>`, a name that never
 * resolves (RFC 6761), so a process without the route fails at once instead of
 * reaching WhatsApp. `routeWhatsAppMedia()` wraps the global `fetch` (which rc14
 * downloads with) to send those requests to `http://127.0.0.1:<port>/<path>`.
 * The port travels in the path, so the route works in a child process too (the
 * preload installs it) and for any number of servers.
 */

/** The host rc14 builds from a loopback `directPath` (its default media host, then the `.invalid` suffix). */
const LOOPBACK_MEDIA_URL = /^https:\/\/mmg\.whatsapp\.net\.invalid\/loopback\/(\d+)(\/.*)$/;

/** The `directPath` under which rc14 will ask for the loopback media host's file at `url` (`http://127.0.0.1:<port>/<path>`). */
export function loopbackDirectPath(url: string): string {
  const { hostname, port, pathname } = new URL(url);
  if (hostname !== '127.0.0.1' || !port) throw new Error(`not a loopback media URL: ${url}`);
  return `.invalid/loopback/${port}${pathname}`;
}

/** Where a request for a loopback `directPath` goes, or undefined for any other URL. */
export function loopbackMediaTarget(url: string): string | undefined {
  const m = LOOPBACK_MEDIA_URL.exec(url);
  return m ? `http://127.0.0.1:${m[1]}${m[2]}` : undefined;
}

const requestUrl = (input: Parameters<typeof fetch>[0]): string => (typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);

/**
 * Makes this process's global `fetch` send requests for loopback `directPath`s
 * to the loopback media host; everything else passes untouched. Returns a
 * function that restores the previous `fetch` (if nothing replaced it since).
 */
export function routeWhatsAppMedia(): () => void {
  const previous = globalThis.fetch;
  const routed: typeof fetch = (input, init) => {
    const target = loopbackMediaTarget(requestUrl(input));
    if (target === undefined) return previous(input, init);
    // A Request carries its own method and headers; rc14 passes a string, but keep them either way.
    return input instanceof Request ? previous(new Request(target, input), init) : previous(target, init);
  };
  globalThis.fetch = routed;
  return () => {
    if (globalThis.fetch === routed) globalThis.fetch = previous;
  };
}
