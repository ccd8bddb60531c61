/** A local append-only journal that keeps accepted events while Redis does not answer in time (DESIGN.md, Decisions 17). */
import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { backoffDelayMs } from './backoff.js';
import { AppError, coerceError } from './errors.js';

/**
 * The journal's states, and how it works.
 *
 * Each process owns one file. `submit()` hands an entry to `apply` (Redis)
 * within a budget; when that fails or takes too long, or when older entries
 * still wait, the entry is appended to the file and fsync'd instead, and a
 * background replay applies the waiting entries one at a time, in file order,
 * retrying the head with backoff until it succeeds. When nothing waits any
 * more the file is truncated to zero and closed.
 *
 * States:
 * - `idle`: constructed; `open()` not called, still reading the file, or failed. `submit()` rejects.
 * - `open`: submits are accepted. While `pending` is 0 they try `apply`
 *   directly; while it is above 0 they are appended behind the waiting
 *   entries, so the order of non-overlapping submits is kept.
 * - `closing`: `close()` was called. New submits reject; submits already
 *   running finish (directly or journaled); replay stops after the apply it
 *   is in, if any.
 * - `closed`: no file is open. What was not replayed stays in the file for
 *   the next `open()`.
 *
 * File format: UTF-8, one JSON object per line, `\n`-terminated:
 * `{"seq":12,"at":1718000000000,"entry":<the entry>}`. `seq` increases by one
 * per journaled entry; a process continues after the highest `seq` it found
 * on open (from 1 when the file was empty). `at` is when the entry was
 * journaled (ms since the epoch). The file's line order is the replay order;
 * empty lines are skipped. The entries submitted while a write is under way
 * are written together by the next one: a single write, then one fdatasync,
 * before any of their submits resolves.
 */
type JournalState = 'idle' | 'open' | 'closing' | 'closed';

/** `submit()` was called on a journal that is not open (before `open()` resolved, or after `close()`). */
export class JournalClosedError extends AppError {
  readonly code = 'JOURNAL_CLOSED';
}

/** An entry could be neither applied nor written to the journal (disk full, folder gone, not JSON). */
export class JournalWriteError extends AppError {
  readonly code = 'JOURNAL_WRITE';
}

/** `apply` did not settle within the submit's budget. Only ever logged. */
class JournalBudgetError extends AppError {
  readonly code = 'JOURNAL_BUDGET';
}

/** The options of a {@link Journal}. */
export interface JournalOptions<T> {
  /** The journal file; its folder is created (mode 0700), the file with mode 0600. One file per process (e.g. `primary.jsonl`, `worker-2.jsonl`): two live processes must never share one. */
  file: string;
  /** Puts one entry into Redis. Must be idempotent: an entry may be applied twice (a timed-out attempt that still completes, a crash during replay). */
  apply(entry: T): Promise<void>;
  log: Logger;
  /** Pause between replay attempts while `apply` keeps failing: first and longest, doubling, with jitter. Default 200 ms to 10 s. */
  retryDelayMs?: { min: number; max: number };
}

/** One entry the file holds, waiting to be applied. */
interface Waiting<T> {
  seq: number;
  entry: T;
}

/** One entry accepted for the journal and not yet on disk. */
interface Unwritten<T> extends Waiting<T> {
  line: string;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The entries of one outage: from the first entry journaled until the journal is empty again. */
interface Outage {
  journaled: number;
  replayed: number;
  fromPreviousRun: number;
  warned: boolean;
  sinceMs: number;
}

/** What reading a journal file found. */
interface ParsedJournal<T> {
  entries: Waiting<T>[];
  /** Complete lines that are not journal records (1-based line numbers, raw text). */
  corrupt: Array<{ line: number; text: string; reason: string }>;
  /** Bytes after the last `\n`: a write the process died in. */
  tornBytes: number;
  /** Length of the file up to and including its last `\n`. */
  completeBytes: number;
}

const DEFAULT_RETRY_DELAY_MS = { min: 200, max: 10_000 };
/** setTimeout's largest delay; beyond it Node fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;
/** How many line numbers the error about unreadable lines lists. */
const MAX_LISTED_LINES = 20;

/**
 * A local append-only journal in front of `apply` (DESIGN.md, Decisions 17):
 * an accepted entry is either applied within its budget or fsync'd to a file
 * before `submit()` resolves, and journaled entries are applied later in
 * order. Delivery is at least once: an entry may be applied twice, never
 * skipped. Waiting entries are also held in memory until applied. See
 * {@link JournalState} for the states and the file format.
 */
export class Journal<T> {
  private state: JournalState = 'idle';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly file: string;
  private readonly retryDelayMs: { min: number; max: number };

  /** On disk, in file order; the head is the one being replayed. */
  private readonly waiting: Waiting<T>[] = [];
  /** Accepted, to be written by the next batch. */
  private batch: Unwritten<T>[] = [];
  /** Entries in `batch` or in the write under way. */
  private unwritten = 0;
  private writing = false;
  private replaying = false;
  private nextSeq = 1;
  /** Open while the file has content; closed when it is emptied. */
  private handle: FileHandle | undefined;
  /** Bytes known to be complete lines; a failed write is cut back to it. */
  private size = 0;
  /** The file may hold lines (applied or not) and needs truncating once nothing waits. */
  private dirty = false;
  /** A failed write could not be cut back: the next write starts with `\n` so its first line stands alone. */
  private needsSeparator = false;
  /** File operations (writes, truncation) run one after the other. */
  private fileChain: Promise<unknown> = Promise.resolve();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly drainWaiters = new Set<(emptied: boolean) => void>();
  private wakeReplay: (() => void) | undefined;
  private outage: Outage | undefined;

  constructor(private readonly options: JournalOptions<T>) {
    this.file = options.file;
    this.log = options.log.child({ module: 'journal' });
    const delay = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    if (!(delay.min >= 1 && delay.max >= delay.min && delay.max <= MAX_TIMER_MS)) {
      throw new RangeError(`retryDelayMs needs 1 <= min <= max <= ${MAX_TIMER_MS}, got ${delay.min}..${delay.max}`);
    }
    this.retryDelayMs = { min: delay.min, max: delay.max };
  }

  /** Entries accepted by the journal and not yet applied (on disk or being written). */
  get pending(): number {
    return this.waiting.length + this.unwritten;
  }

  /**
   * Creates the folder, reads the entries a previous run left (a crash, an
   * outage at shutdown) and starts replaying them. A torn last line is cut
   * off with a warning; any other unreadable line is logged as an error,
   * copied to `<file>.corrupt` and skipped. Idempotent; rejects after `close()`.
   */
  open(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return Promise.reject(new JournalClosedError(`journal ${this.file} is closed`));
    this.opening ??= this.load().then(undefined, (e: unknown) => {
      const err = coerceError(e);
      // A failed open may be tried again (e.g. once the folder is fixed).
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  /**
   * Tries `apply(entry)` for at most `budgetMs`. If it succeeds in time the
   * entry is done (`'direct'`). If it fails or the budget passes, or if older
   * entries still wait in the journal (then `apply` is not called at all), the
   * entry is appended to the file and fsync'd before this resolves
   * (`'journaled'`), and replay runs in the background. A `budgetMs` of 0
   * journals at once.
   *
   * Rejects with a {@link JournalWriteError} only if the entry could be
   * neither applied in time nor written (disk full): the caller must then
   * answer an error. An attempt that timed out may still land in Redis later,
   * so a rejected entry may exist there all the same. Rejects with a
   * {@link JournalClosedError} when the journal is not open.
   */
  async submit(entry: T, budgetMs: number): Promise<'direct' | 'journaled'> {
    if (this.state !== 'open') throw new JournalClosedError(`journal ${this.file} is not open`);
    if (!(budgetMs >= 0 && budgetMs <= MAX_TIMER_MS)) throw new RangeError(`budgetMs must be between 0 and ${MAX_TIMER_MS}, got ${budgetMs}`);
    const task = this.route(entry, budgetMs);
    this.inFlight.add(task);
    try {
      return await task;
    } finally {
      this.inFlight.delete(task);
    }
  }

  /**
   * Resolves `true` once nothing waits (after the emptied file is truncated),
   * or `false` after `timeoutMs` or when the journal closes first. For
   * shutdown: its timer keeps the process alive until then.
   */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.state === 'closed') return Promise.resolve(this.pending === 0);
    // With nothing pending and replay idle there is no truncation left to wait for.
    if (this.pending === 0 && !this.replaying) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (emptied: boolean): void => {
        clearTimeout(timer);
        this.drainWaiters.delete(done);
        resolve(emptied);
      };
      const timer = setTimeout(() => done(false), Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS));
      this.drainWaiters.add(done);
    });
  }

  /**
   * Stops accepting submits, lets the submits already running finish
   * (directly or journaled), stops replaying and closes the file; what is
   * left stays in it for the next `open()`. Does not wait for an apply replay
   * has under way (that entry stays in the file and is applied again next
   * time). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.opening) await Promise.allSettled([this.opening]);
    this.state = 'closing';
    this.wakeReplay?.();
    await Promise.allSettled([...this.inFlight]);
    await this.fileChain;
    this.state = 'closed';
    const emptied = this.pending === 0;
    for (const waiter of [...this.drainWaiters]) waiter(emptied);
    const handle = this.handle;
    this.handle = undefined;
    if (handle) await handle.close();
  }

  private async load(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    const bytes = await readIfExists(this.file);
    const parsed = parseJournal<T>(bytes);
    if (parsed.corrupt.length > 0) await this.keepCorrupt(parsed);
    if (parsed.tornBytes > 0) {
      this.log.warn({ file: this.file, bytes: parsed.tornBytes }, 'journal ends in a torn line (the process died while writing it): ignored');
    }
    const keep = parsed.entries.length > 0 ? parsed.completeBytes : 0;
    if (keep < bytes.length) await truncateFile(this.file, keep);
    for (const waiting of parsed.entries) this.waiting.push(waiting);
    this.nextSeq = parsed.entries.reduce((max, w) => Math.max(max, w.seq), 0) + 1;
    this.size = keep;
    this.dirty = keep > 0;
    this.state = 'open';
    if (parsed.entries.length > 0) {
      this.outage = { journaled: 0, replayed: 0, fromPreviousRun: parsed.entries.length, warned: false, sinceMs: Date.now() };
      this.log.info({ file: this.file, entries: parsed.entries.length }, 'journal holds entries from a previous run: replaying');
      this.kick();
    }
  }

  /** Copies unreadable lines to `<file>.corrupt` before the journal can be truncated, so an operator can inspect them. */
  private async keepCorrupt(parsed: ParsedJournal<T>): Promise<void> {
    const corruptFile = `${this.file}.corrupt`;
    const handle = await open(corruptFile, 'a', 0o600);
    try {
      await writeAll(handle, Buffer.from(parsed.corrupt.map((c) => `${c.text}\n`).join(''), 'utf8'));
      await handle.datasync();
    } finally {
      await handle.close();
    }
    this.log.error(
      {
        file: this.file,
        corruptFile,
        count: parsed.corrupt.length,
        lines: parsed.corrupt.slice(0, MAX_LISTED_LINES).map((c) => c.line),
        reasons: [...new Set(parsed.corrupt.map((c) => c.reason))].slice(0, MAX_LISTED_LINES),
      },
      'journal lines unreadable: skipped, copied to the .corrupt file',
    );
  }

  private async route(entry: T, budgetMs: number): Promise<'direct' | 'journaled'> {
    // Entries already waiting go first: a direct apply now would overtake them.
    if (this.pending > 0) return this.journal(entry, undefined);
    if (budgetMs === 0) return this.journal(entry, new JournalBudgetError('budget of 0 ms: journaled without trying apply'));
    const failure = await this.attempt(entry, budgetMs);
    if (failure === undefined) return 'direct';
    return this.journal(entry, failure);
  }

  /** Resolves `undefined` when `apply` succeeds within `budgetMs`, else the reason; never rejects, also not for an apply that fails later. */
  private attempt(entry: T, budgetMs: number): Promise<Error | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(new JournalBudgetError(`apply did not settle within ${budgetMs} ms`)), budgetMs);
      timer.unref();
      this.callApply(entry).then(
        () => {
          clearTimeout(timer);
          resolve(undefined);
        },
        (e: unknown) => {
          const err = coerceError(e);
          clearTimeout(timer);
          resolve(err);
        },
      );
    });
  }

  /** Resolves `undefined` when `apply` succeeds, else its error; waits as long as `apply` takes. */
  private settle(entry: T): Promise<Error | undefined> {
    return this.callApply(entry).then(
      () => undefined,
      (e: unknown) => coerceError(e),
    );
  }

  /** `apply` with a synchronous throw turned into a rejection. */
  private async callApply(entry: T): Promise<void> {
    await this.options.apply(entry);
  }

  /** Appends `entry` to the next batch; the part before the first await runs at once, so batches keep call order. */
  private async journal(entry: T, reason: Error | undefined): Promise<'journaled'> {
    let body: string | undefined;
    try {
      body = JSON.stringify(entry);
    } catch (e) {
      const err = coerceError(e);
      throw new JournalWriteError('entry is not JSON-serialisable', { cause: err });
    }
    if (body === undefined) throw new JournalWriteError('entry is not JSON-serialisable');
    const seq = this.nextSeq++;
    const line = `{"seq":${seq},"at":${Date.now()},"entry":${body}}\n`;
    this.noteJournaled(seq, reason);
    this.unwritten += 1;
    const written = new Promise<void>((resolve, reject) => {
      this.batch.push({ seq, entry, line, resolve, reject });
    });
    if (!this.writing) void this.flush();
    await written;
    return 'journaled';
  }

  private noteJournaled(seq: number, reason: Error | undefined): void {
    this.outage ??= { journaled: 0, replayed: 0, fromPreviousRun: 0, warned: false, sinceMs: Date.now() };
    this.outage.journaled += 1;
    if (reason !== undefined && !this.outage.warned) {
      this.outage.warned = true;
      this.log.warn({ file: this.file, err: reason }, 'apply failed or passed its budget: journaling entries until replay catches up');
    }
    this.log.debug({ file: this.file, seq }, 'entry journaled');
  }

  /** Writes batches until none is left: entries arriving during a write go into the next one (group commit). Never rejects. */
  private async flush(): Promise<void> {
    this.writing = true;
    while (this.batch.length > 0) {
      const batch = this.batch;
      this.batch = [];
      const failure = await this.exclusive(() => this.writeLines(batch.map((u) => u.line).join('')));
      this.unwritten -= batch.length;
      for (const u of batch) {
        if (failure) {
          u.reject(failure);
        } else {
          this.waiting.push({ seq: u.seq, entry: u.entry });
          u.resolve();
        }
      }
      this.kick();
    }
    this.writing = false;
    this.kick();
  }

  /** Appends `text` with one write and one fdatasync; on failure cuts the file back to its last complete line. Resolves the error instead of rejecting. */
  private async writeLines(text: string): Promise<JournalWriteError | undefined> {
    let handle: FileHandle | undefined;
    try {
      handle = await this.appendHandle();
      const bytes = Buffer.from(this.needsSeparator ? `\n${text}` : text, 'utf8');
      this.dirty = true;
      await writeAll(handle, bytes);
      await handle.datasync();
      this.size += bytes.length;
      this.needsSeparator = false;
      return undefined;
    } catch (e) {
      const err = coerceError(e);
      if (!handle) return new JournalWriteError(`cannot open journal ${this.file}`, { cause: err });
      return this.rollback(handle, err);
    }
  }

  /** Cuts a failed write off the file so the next line does not glue onto a fragment; if that fails too, the next write starts on a fresh line. */
  private async rollback(handle: FileHandle, cause: Error): Promise<JournalWriteError> {
    try {
      await handle.truncate(this.size);
      return new JournalWriteError(`cannot write journal ${this.file}`, { cause });
    } catch (e) {
      const err = coerceError(e);
      this.needsSeparator = true;
      return new JournalWriteError(`cannot write journal ${this.file}`, { cause: new AggregateError([cause, err], 'write and rollback failed') });
    }
  }

  /** The file opened for appending; created (mode 0600, folder 0700, folder fsync'd) when missing. */
  private async appendHandle(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    const dir = dirname(this.file);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let handle: FileHandle;
    let created = true;
    try {
      handle = await open(this.file, 'ax', 0o600);
    } catch (e) {
      const err = coerceError(e);
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      created = false;
      handle = await open(this.file, 'a', 0o600);
    }
    try {
      if (created) await syncFolder(dir);
      this.size = (await handle.stat()).size;
    } catch (e) {
      const err = coerceError(e);
      await handle.close();
      throw err;
    }
    this.handle = handle;
    return handle;
  }

  /** Empties the file once every line in it has been applied, and closes it. Resolves the error instead of rejecting. */
  private async truncateEmpty(): Promise<Error | undefined> {
    try {
      const handle = await this.appendHandle();
      await handle.truncate(0);
      await handle.datasync();
      this.handle = undefined;
      this.size = 0;
      this.dirty = false;
      this.needsSeparator = false;
      await handle.close();
      return undefined;
    } catch (e) {
      return coerceError(e);
    }
  }

  /** Runs `op` after every file operation queued before it. `op` must not reject. */
  private exclusive<R>(op: () => Promise<R>): Promise<R> {
    const run = this.fileChain.then(op);
    this.fileChain = run;
    return run;
  }

  private kick(): void {
    if (this.state !== 'open' || this.replaying) return;
    void this.replay();
  }

  /** Applies waiting entries one at a time in file order; the head is retried with backoff until it succeeds. Never rejects. */
  private async replay(): Promise<void> {
    this.replaying = true;
    let failures = 0;
    while (this.state === 'open') {
      const head = this.waiting[0];
      if (head === undefined) {
        // Entries being written join `waiting` when their write lands, and that kicks replay again.
        if (this.unwritten > 0) break;
        this.finishOutage();
        if (this.dirty) {
          // Queued behind nothing: no write is pending, so every line in the file has been applied.
          const failure = await this.exclusive(() => this.truncateEmpty());
          if (failure) this.log.warn({ file: this.file, err: failure }, 'cannot truncate the replayed journal: its entries are applied again after a restart');
        }
        if (this.pending > 0) continue;
        for (const waiter of [...this.drainWaiters]) waiter(true);
        break;
      }
      const failure = await this.settle(head.entry);
      if (this.state !== 'open') break;
      if (failure) {
        failures += 1;
        const delayMs = backoffDelayMs(failures, this.retryDelayMs.min, this.retryDelayMs.max);
        this.noteReplayFailure(head.seq, failures, delayMs, failure);
        await this.pause(delayMs);
        continue;
      }
      failures = 0;
      this.waiting.shift();
      if (this.outage) this.outage.replayed += 1;
    }
    this.replaying = false;
  }

  private noteReplayFailure(seq: number, attempt: number, delayMs: number, err: Error): void {
    if (this.outage && !this.outage.warned) {
      this.outage.warned = true;
      this.log.warn({ file: this.file, err, pending: this.pending }, 'journal replay failing: retrying with backoff');
    }
    this.log.debug({ file: this.file, seq, attempt, delayMs, err }, 'journal replay attempt failed');
  }

  private finishOutage(): void {
    const outage = this.outage;
    if (!outage) return;
    this.outage = undefined;
    this.log.info(
      { file: this.file, replayed: outage.replayed, journaled: outage.journaled, fromPreviousRun: outage.fromPreviousRun, durationMs: Date.now() - outage.sinceMs },
      'journal replayed: submits go direct again',
    );
  }

  /** Sleeps `ms` without keeping the process alive; `close()` cuts it short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakeReplay = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.wakeReplay = wake;
    });
  }
}

/** Splits a journal file into records, unreadable lines and a torn tail. Pure. */
function parseJournal<T>(bytes: Buffer): ParsedJournal<T> {
  const completeBytes = bytes.lastIndexOf(0x0a) + 1;
  const out: ParsedJournal<T> = { entries: [], corrupt: [], tornBytes: bytes.length - completeBytes, completeBytes };
  if (completeBytes === 0) return out;
  const lines = bytes.subarray(0, completeBytes - 1).toString('utf8').split('\n');
  lines.forEach((text, i) => {
    // Empty lines are the separators written after a failed write.
    if (text.length === 0) return;
    const record = parseRecord<T>(text);
    if (typeof record === 'string') out.corrupt.push({ line: i + 1, text, reason: record });
    else out.entries.push(record);
  });
  return out;
}

/** One line as a record, or why it is not one. */
function parseRecord<T>(text: string): Waiting<T> | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const err = coerceError(e);
    // V8's message quotes the line, and lines hold message bodies: keep only the error's kind.
    return `not JSON (${err.name})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const seq = (value as { seq?: unknown }).seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return 'no valid seq';
  if (!('entry' in value)) return 'no entry';
  // The file is Ponte's own: an entry that was JSON-serialisable when written is a T again.
  return { seq, entry: value.entry as T };
}

async function readIfExists(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    const err = coerceError(e);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw err;
  }
}

async function truncateFile(file: string, length: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.truncate(length);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

/** Makes a new file's directory entry durable (POSIX). */
async function syncFolder(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
