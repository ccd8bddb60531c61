// Unit tests of the local journal: a temp folder per test and a fake apply that succeeds, fails or hangs on demand.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { coerceError } from '../../../src/lib/errors.js';
import { Journal, JournalClosedError, JournalWriteError } from '../../../src/lib/journal.js';
import { createLogger, type Logger } from '../../../src/observability/logger.js';

interface Event {
  id: number;
  chat: string;
  note?: string;
}

type Mode = 'ok' | 'fail' | 'hang';

/** A stand-in for Redis whose apply succeeds, fails or hangs, per entry if need be. */
class FakeStore {
  mode: Mode = 'ok';
  decide: (event: Event) => Mode = () => this.mode;
  /** Ids in the order apply was called. */
  readonly calls: number[] = [];
  /** Ids in the order applications succeeded (repeats included). */
  readonly applied: number[] = [];
  private readonly held: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  readonly apply = async (event: Event): Promise<void> => {
    this.calls.push(event.id);
    const mode = this.decide(event);
    if (mode === 'fail') throw new Error('redis unreachable');
    if (mode === 'hang') await new Promise<void>((resolve, reject) => this.held.push({ resolve, reject }));
    this.applied.push(event.id);
  };

  get hanging(): number {
    return this.held.length;
  }

  /** Settles every hanging apply: success, or a late failure. */
  release(ok: boolean): void {
    for (const h of this.held.splice(0)) {
      if (ok) h.resolve();
      else h.reject(new Error('late failure'));
    }
  }
}

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function collectingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const text of chunk.toString('utf8').split('\n')) if (text) lines.push(JSON.parse(text) as LogLine);
      done();
    },
  });
  return { log: createLogger({ level: 'debug', destination }), lines };
}

const WARN = 40;
const ERROR = 50;

function ev(id: number): Event {
  return { id, chat: `chat-${id % 3}` };
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const err = coerceError(e);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** The records in the file, in file order. */
async function records(file: string): Promise<Array<{ seq: number; at: number; entry: Event }>> {
  const text = await readText(file);
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as { seq: number; at: number; entry: Event });
}

function line(seq: number, entry: Event): string {
  return `${JSON.stringify({ seq, at: 1, entry })}\n`;
}

const DRAIN_MS = 10_000;

describe('Journal', () => {
  let dir: string;
  let file: string;
  let journals: Journal<Event>[];
  let stores: FakeStore[];
  let logs: ReturnType<typeof collectingLogger>;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ponte-journal-'));
    file = join(dir, 'data', 'journal', 'worker-1.jsonl');
    journals = [];
    stores = [];
    logs = collectingLogger();
  });

  afterEach(async () => {
    await Promise.all(journals.map((j) => j.close()));
    for (const s of stores) s.release(false);
    await rm(dir, { recursive: true, force: true });
  });

  async function openJournal(store = new FakeStore(), path = file): Promise<{ journal: Journal<Event>; store: FakeStore }> {
    stores.push(store);
    const journal = new Journal<Event>({ file: path, apply: store.apply, log: logs.log, retryDelayMs: { min: 1, max: 4 } });
    journals.push(journal);
    await journal.open();
    return { journal, store };
  }

  /** Leaves `content` in the journal file, as a previous run would have. */
  async function seed(content: string): Promise<void> {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
  }

  function logged(msgPart: string): LogLine[] {
    return logs.lines.filter((l) => l.msg.includes(msgPart));
  }

  it('applies an entry directly when apply succeeds within the budget, writing nothing', async () => {
    const { journal, store } = await openJournal();
    await expect(journal.submit(ev(1), 1000)).resolves.toBe('direct');
    expect(store.applied).toEqual([1]);
    expect(journal.pending).toBe(0);
    expect(await readText(file)).toBe('');
    expect(logs.lines.filter((l) => l.level >= WARN)).toEqual([]);
  });

  it('creates its folder with mode 0700 and the file with mode 0600', async () => {
    const { journal, store } = await openJournal();
    expect((await stat(join(dir, 'data', 'journal'))).mode & 0o777).toBe(0o700);
    store.mode = 'fail';
    await journal.submit(ev(1), 1000);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('journals entries while apply fails and replays them in order once it succeeds again', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'fail';
    for (const id of [1, 2, 3]) await expect(journal.submit(ev(id), 1000)).resolves.toBe('journaled');
    expect(journal.pending).toBe(3);
    const onDisk = await records(file);
    expect(onDisk.map((r) => r.entry)).toEqual([ev(1), ev(2), ev(3)]);
    expect(onDisk.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(store.applied).toEqual([]);

    store.mode = 'ok';
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(store.applied).toEqual([1, 2, 3]);
    expect(journal.pending).toBe(0);
    expect(await readText(file)).toBe('');

    // One warning for the outage, not one per entry; the count comes with the end of replay.
    expect(logs.lines.filter((l) => l.level === WARN)).toHaveLength(1);
    const [done] = logged('journal replayed');
    expect(done).toMatchObject({ replayed: 3, journaled: 3 });
    // Entries (message bodies) never reach the logs.
    expect(JSON.stringify(logs.lines)).not.toContain('chat-1');
  });

  it('journals an entry whose apply hangs past the budget; its late failure breaks nothing', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'hang';
    await expect(journal.submit(ev(1), 20)).resolves.toBe('journaled');
    expect((await records(file)).map((r) => r.entry.id)).toEqual([1]);

    // The timed-out attempt (and the replay attempt hanging beside it) now fail late.
    await vi.waitFor(() => expect(store.hanging).toBe(2));
    store.mode = 'ok';
    store.release(false);
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(store.applied).toEqual([1]);
    expect(await readText(file)).toBe('');
  });

  it('journals an entry whose apply hangs past the budget; its late success only applies it again', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'hang';
    await expect(journal.submit(ev(1), 20)).resolves.toBe('journaled');
    store.mode = 'ok';
    store.release(true);
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(new Set(store.applied)).toEqual(new Set([1]));
    await expect(journal.submit(ev(2), 1000)).resolves.toBe('direct');
  });

  it('journals a new submit behind waiting entries without trying apply, and replays in order', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'fail';
    await journal.submit(ev(1), 1000);
    await journal.submit(ev(2), 1000);
    // Replay gets stuck on entry 1, while apply would now work for anything else.
    store.decide = (e) => (e.id === 1 ? 'hang' : 'ok');
    await vi.waitFor(() => expect(store.hanging).toBe(1));

    await expect(journal.submit(ev(3), 1000)).resolves.toBe('journaled');
    expect(store.calls).not.toContain(3);
    expect((await records(file)).map((r) => r.entry.id)).toEqual([1, 2, 3]);

    store.release(true);
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(store.applied).toEqual([1, 2, 3]);
  });

  it('keeps submit order for many concurrent journaled submits (written in batches)', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'fail';
    const ids = Array.from({ length: 40 }, (_, i) => i + 1);
    const outcomes = await Promise.all(ids.map((id) => journal.submit(ev(id), 1000)));
    expect(outcomes.every((o) => o === 'journaled')).toBe(true);
    const onDisk = await records(file);
    expect(onDisk.map((r) => r.entry.id)).toEqual(ids);
    expect(onDisk.map((r) => r.seq)).toEqual([...onDisk.map((r) => r.seq)].sort((a, b) => a - b));

    store.mode = 'ok';
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(store.applied).toEqual(ids);
  });

  it('journals at once with a budget of 0', async () => {
    const { journal, store } = await openJournal();
    await expect(journal.submit(ev(1), 0)).resolves.toBe('journaled');
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(store.calls).toEqual([1]);
  });

  it('after a crash in the middle of replay, a new journal on the same file applies what was left again, in order', async () => {
    const { journal: crashed, store: before } = await openJournal();
    before.mode = 'fail';
    for (const id of [1, 2, 3]) await crashed.submit(ev(id), 1000);
    // Entry 1 lands, then the process "dies" while applying entry 2: nothing more happens in it.
    before.decide = (e) => (e.id === 1 ? 'ok' : 'hang');
    await vi.waitFor(() => expect(before.hanging).toBe(1));
    expect(before.applied).toEqual([1]);

    const { journal: next, store: after } = await openJournal();
    expect(logged('journal holds entries from a previous run')[0]).toMatchObject({ entries: 3 });
    await expect(next.drain(DRAIN_MS)).resolves.toBe(true);
    // Entry 1 is applied a second time (apply is idempotent); none is skipped.
    expect(after.applied).toEqual([1, 2, 3]);
    expect(await readText(file)).toBe('');
  });

  it('ignores a torn last line on open and cuts it off before the next append', async () => {
    await seed(line(1, ev(1)) + line(2, ev(2)) + '{"seq":3,"at":1,"entry":{"id":3,"ch');

    const store = new FakeStore();
    store.mode = 'fail';
    const { journal } = await openJournal(store);
    expect(journal.pending).toBe(2);
    expect(logged('torn line')).toHaveLength(1);
    expect(logged('torn line')[0]?.level).toBe(WARN);

    await journal.submit(ev(3), 1000);
    expect((await records(file)).map((r) => r.entry.id)).toEqual([1, 2, 3]);
    expect((await records(file)).map((r) => r.seq)).toEqual([1, 2, 3]);

    store.mode = 'ok';
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(store.applied).toEqual([1, 2, 3]);
    expect(await readText(file)).toBe('');
  });

  it('empties a file that holds only a torn line', async () => {
    await seed('{"seq":1,"at":1,"ent');
    const { journal } = await openJournal();
    expect(journal.pending).toBe(0);
    expect(await readText(file)).toBe('');
  });

  it('logs an unreadable line as an error, keeps it aside and still replays the lines after it', async () => {
    await seed(line(1, ev(1)) + 'not json at all\n' + '{"seq":7}\n' + line(2, ev(2)));

    const { journal, store } = await openJournal();
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(store.applied).toEqual([1, 2]);
    const [error] = logged('unreadable');
    expect(error).toMatchObject({ level: ERROR, count: 2, lines: [2, 3] });
    expect(await readText(`${file}.corrupt`)).toBe('not json at all\n{"seq":7}\n');
    expect(await readText(file)).toBe('');
  });

  it('empties the file after a full replay, and a later outage starts a fresh file and warns again', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'fail';
    await journal.submit(ev(1), 1000);
    store.mode = 'ok';
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(await readText(file)).toBe('');

    store.mode = 'fail';
    await journal.submit(ev(2), 1000);
    expect((await records(file)).map((r) => r.entry.id)).toEqual([2]);
    store.mode = 'ok';
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    expect(await readText(file)).toBe('');
    expect(store.applied).toEqual([1, 2]);
    expect(logs.lines.filter((l) => l.level === WARN)).toHaveLength(2);
    expect(logged('journal replayed')).toHaveLength(2);
  });

  it('drain() resolves true at once when empty and false on timeout while apply keeps failing', async () => {
    const { journal, store } = await openJournal();
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
    store.mode = 'fail';
    await journal.submit(ev(1), 1000);
    await expect(journal.drain(10)).resolves.toBe(false);
    expect(journal.pending).toBe(1);
  });

  it('close() stops replay, leaves the entries in the file for the next open, and is idempotent', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'fail';
    await journal.submit(ev(1), 1000);
    await journal.submit(ev(2), 1000);
    const closing = journal.close();
    expect(journal.close()).toBe(closing);
    await closing;
    const callsAtClose = store.calls.length;
    store.mode = 'ok';

    await expect(journal.submit(ev(3), 1000)).rejects.toBeInstanceOf(JournalClosedError);
    expect((await records(file)).map((r) => r.entry.id)).toEqual([1, 2]);

    const { journal: next, store: after } = await openJournal();
    await expect(next.drain(DRAIN_MS)).resolves.toBe(true);
    expect(after.applied).toEqual([1, 2]);
    expect(store.calls).toHaveLength(callsAtClose);
    expect(store.applied).toEqual([]);
  });

  it('close() lets a submit already under way finish by journaling it', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'hang';
    const submitted = journal.submit(ev(1), 30);
    await journal.close();
    await expect(submitted).resolves.toBe('journaled');
    expect((await records(file)).map((r) => r.entry.id)).toEqual([1]);
  });

  it('submit() rejects when the entry can be neither applied nor written (its folder became a file)', async () => {
    const { journal, store } = await openJournal();
    await rm(join(dir, 'data'), { recursive: true });
    await writeFile(join(dir, 'data'), 'not a folder');
    store.mode = 'fail';
    await expect(journal.submit(ev(1), 1000)).rejects.toBeInstanceOf(JournalWriteError);
    expect(journal.pending).toBe(0);
    await expect(journal.drain(DRAIN_MS)).resolves.toBe(true);
  });

  it('open() rejects when the folder is a file, and submit() before open rejects', async () => {
    await writeFile(join(dir, 'data'), 'not a folder');
    const store = new FakeStore();
    const journal = new Journal<Event>({ file, apply: store.apply, log: logs.log });
    journals.push(journal);
    await expect(journal.open()).rejects.toThrow();
    await expect(journal.submit(ev(1), 1000)).rejects.toBeInstanceOf(JournalClosedError);
    expect(store.calls).toEqual([]);
  });

  it('submit() rejects an entry that is not JSON-serialisable at run time once apply fails', async () => {
    const { journal, store } = await openJournal();
    store.mode = 'fail';
    const bad = { id: 1, chat: 'c', note: 10n } as unknown as Event;
    await expect(journal.submit(bad, 1000)).rejects.toBeInstanceOf(JournalWriteError);
    expect(journal.pending).toBe(0);
  });
});
