/** Parsers that answer `undefined` for malformed input instead of throwing, and let every other failure through. */

/** The JSON value of `text`, or `undefined` when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** `text` as a URL, or `undefined` when it is not an absolute URL. */
export function parseUrl(text: string): URL | undefined {
  return URL.canParse(text) ? new URL(text) : undefined;
}

/** `text` with its percent-escapes decoded, or `undefined` when an escape is malformed. */
export function decodeUriComponent(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch (err) {
    if (err instanceof URIError) return undefined;
    throw err;
  }
}
