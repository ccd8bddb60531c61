/** Writes a byte stream to a temporary file, stopping at a size cap, so large media never sit whole in memory. */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError, coerceError } from './errors.js';

/** The stream carried more than the cap; `bytes` is how much had arrived when it was cut. */
export class TooLargeError extends AppError {
  readonly code = 'TOO_LARGE';

  constructor(
    readonly maxBytes: number,
    readonly bytes: number,
  ) {
    super(`more than ${maxBytes} bytes`);
  }
}

export interface Spooled {
  file: string;
  bytes: number;
}

/**
 * Copies `source` into a new file under `dir` (the system's temporary folder
 * by default), counting bytes; past `maxBytes` the copy stops, the source is
 * destroyed, the partial file removed and a {@link TooLargeError} thrown. The
 * caller removes the file it gets.
 */
export async function spoolToFile(source: Readable, o: { maxBytes: number; dir?: string; prefix?: string; signal?: AbortSignal }): Promise<Spooled> {
  const file = join(o.dir ?? tmpdir(), `${o.prefix ?? 'ponte-'}${randomBytes(8).toString('hex')}`);
  let bytes = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > o.maxBytes) done(new TooLargeError(o.maxBytes, bytes));
      else done(null, chunk);
    },
  });
  try {
    const sink = createWriteStream(file, { mode: 0o600 });
    if (o.signal) await pipeline(source, cap, sink, { signal: o.signal });
    else await pipeline(source, cap, sink);
  } catch (err) {
    await rm(file, { force: true });
    throw coerceError(err);
  }
  return { file, bytes };
}
