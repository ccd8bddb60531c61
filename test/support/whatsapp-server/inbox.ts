/**
 * A list of things that happened (messages a peer got, receipts, uploads)
 * that tests can wait on: `waitFor` resolves with the first item, past or
 * future, that matches. It never times out by itself; the test runner's
 * timeout does that. `close()` rejects whatever is still waiting.
 */
export class Inbox<T> {
  readonly items: T[] = [];
  private waiters: Array<{ match: (item: T) => boolean; resolve: (item: T) => void; reject: (err: Error) => void }> = [];
  private closedWith: Error | undefined;

  constructor(private readonly name: string) {}

  push(item: T): void {
    this.items.push(item);
    for (const w of [...this.waiters]) {
      if (!w.match(item)) continue;
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(item);
    }
  }

  /** The first item matching `match` that arrived, or the next one that will. */
  waitFor(match: (item: T) => boolean = () => true): Promise<T> {
    const seen = this.items.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<T>((resolve, reject) => this.waiters.push({ match, resolve, reject }));
  }

  /** Waits for the next item matching `match` that arrives after this call. */
  next(match: (item: T) => boolean = () => true): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<T>((resolve, reject) => this.waiters.push({ match, resolve, reject }));
  }

  filter(match: (item: T) => boolean): T[] {
    return this.items.filter(match);
  }

  close(): void {
    this.closedWith ??= new Error(`${this.name}: closed while waiting`);
    for (const w of this.waiters.splice(0)) w.reject(this.closedWith);
  }
}
