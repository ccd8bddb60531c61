/** A worker's local journal of inbound WhatsApp events, and the adoption of journals left by workers that died. */
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { coerceError } from '../lib/errors.js';
import { Journal } from '../lib/journal.js';
import type { InboundEvent } from '../model/inbound.js';
import type { Logger } from '../observability/logger.js';

/** `worker-<slot>-<pid>.jsonl`, optionally `.adopted-<pid>` once another worker took it over. */
const FILE = /^worker-\d+-(\d+)\.jsonl(?:\.adopted-(\d+))?$/;

export interface WorkerJournalOptions {
  /** The journal folder (`<sessions>/journal`). */
  dir: string;
  slot: number;
  log: Logger;
  /** Puts one event into Redis (idempotent: the store drops a WhatsApp id it has seen). */
  apply(event: InboundEvent): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (coerceError(err) as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One file per worker process (`worker-<slot>-<pid>.jsonl`): two processes
 * never share one, even when a worker outlives the primary that forked it.
 * At start a worker adopts every journal whose process is gone (claimed by
 * an atomic rename, so two workers never replay the same file), replays it
 * in the background and deletes it once empty (DESIGN.md, Decisions 17).
 */
export class WorkerJournal {
  readonly journal: Journal<InboundEvent>;
  private readonly adopted: Array<Promise<void>> = [];
  private readonly adoptedJournals: Array<Journal<InboundEvent>> = [];
  private closed = false;

  constructor(private readonly options: WorkerJournalOptions) {
    this.journal = new Journal<InboundEvent>({ file: join(options.dir, `worker-${options.slot}-${process.pid}.jsonl`), apply: (e) => options.apply(e), log: options.log });
  }

  async open(): Promise<void> {
    await this.journal.open();
    const names = await readdir(this.options.dir).catch((err: unknown) => {
      if ((coerceError(err) as NodeJS.ErrnoException).code === 'ENOENT') return [] as string[];
      throw err;
    });
    for (const name of names) {
      const m = FILE.exec(name);
      if (!m) continue;
      const owner = Number(m[2] ?? m[1]);
      if (owner === process.pid || alive(owner)) continue;
      const claimed = join(this.options.dir, `${name.replace(/\.adopted-\d+$/, '')}.adopted-${process.pid}`);
      try {
        await rename(join(this.options.dir, name), claimed);
      } catch (err) {
        // Another worker claimed it first.
        if ((coerceError(err) as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      this.adopted.push(this.replay(claimed));
    }
  }

  private async replay(file: string): Promise<void> {
    const journal = new Journal<InboundEvent>({ file, apply: (e) => this.options.apply(e), log: this.options.log });
    this.adoptedJournals.push(journal);
    try {
      await journal.open();
      if (journal.pending > 0) this.options.log.info({ file, entries: journal.pending }, 'replaying the journal of a worker that is gone');
      // Until it is empty; a shutdown meanwhile leaves the rest for the next adopter.
      let empty = await journal.drain(60_000);
      while (!empty && !this.closed) empty = await journal.drain(60_000);
      await journal.close();
      if (empty) await rm(file, { force: true });
    } catch (err) {
      this.options.log.error({ err: coerceError(err), file }, 'could not replay an adopted journal; it stays for the next start');
    }
  }

  /** Waits up to `timeoutMs` for this worker's own entries to reach Redis; true when none is left. */
  drain(timeoutMs: number): Promise<boolean> {
    return this.journal.drain(timeoutMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    // Adopted replays stop with their journals; what is left of them waits for the next adopter.
    await Promise.allSettled([this.journal.close(), ...this.adoptedJournals.map((j) => j.close())]);
  }
}
