/** The sandbox's simulated WhatsApp media server: what its senders sent, in files outside the worker's memory, newest kept. */
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';

/**
 * Media by SHA-256 (hex), each in a file of a private temporary folder, up
 * to `maxBytes` in all (the oldest files are deleted first). A download
 * streams the file, as one from WhatsApp's servers arrives over the
 * network: the media a rehearsal or a benchmark sends never sit in the
 * worker's memory, so the worker's own figures stay its own. The folder is
 * removed when the process exits.
 */
export class SandboxCdn {
  private dir: string | undefined;
  private readonly files: LRUCache<string, number>;

  constructor(maxBytes: number) {
    this.files = new LRUCache<string, number>({
      maxSize: maxBytes,
      sizeCalculation: (bytes) => Math.max(1, bytes),
      // A replaced entry ('set') keeps its file: the new bytes were just written there.
      dispose: (_bytes, sha, reason) => {
        if (reason !== 'set') rmSync(this.path(sha), { force: true });
      },
    });
  }

  /** Bytes kept, over every file. */
  get size(): number {
    return this.files.calculatedSize;
  }

  /** Stores `data` under `sha` (written before this returns, so a download that follows finds it). */
  put(sha: string, data: Buffer): void {
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new RangeError('a sandbox media id is a SHA-256 in hex');
    if (!this.dir) {
      const dir = mkdtempSync(join(tmpdir(), 'ponte-sandbox-cdn-'));
      this.dir = dir;
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    }
    writeFileSync(this.path(sha), data);
    this.files.set(sha, data.length);
  }

  has(sha: string): boolean {
    return this.files.has(sha);
  }

  /** A stream of the media, or `undefined` when it was never sent or is no longer kept. */
  open(sha: string): Readable | undefined {
    if (!this.files.get(sha)) return undefined;
    return createReadStream(this.path(sha), { highWaterMark: 64 * 1024 });
  }

  private path(sha: string): string {
    return join(this.dir ?? tmpdir(), sha);
  }
}
