/**
 * Faults on demand for the Chatwoot double: refusals (a status for a share
 * of calls or for a time window, 429 like rack-attack), lost responses
 * (the request is applied, then the answer is an error, never comes, or the
 * connection breaks) and latency. Every random choice comes from a seeded
 * PRNG, so the same seed fails the same calls.
 */

export interface FailOptions {
  status: number;
  /** Share of matching calls that fail (seeded). */
  ratio?: number;
  /** Every matching call fails for this long from now. */
  forMs?: number;
  /** Adds `Retry-After: <s>` to a 429 (Chatwoot itself never sends one). */
  retryAfterS?: number;
  /** Only this route (`"POST /api/v1/accounts/{account_id}/…"`); all routes when absent. */
  route?: string;
}

export interface LoseOptions {
  ratio: number;
  /** After applying the request: answer `status`, never answer, or break the connection. */
  mode: 'status' | 'timeout' | 'reset';
  /** For `mode: 'status'` (default 500). */
  status?: number;
  route?: string;
}

export interface FaultCounts {
  /** Calls refused with a non-429 status. */
  failed: number;
  /** Calls refused with 429. */
  rateLimited: number;
  /** Calls applied whose answer was lost. */
  lost: number;
}

/** mulberry32: a tiny seeded PRNG, so fault runs are reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ActiveFail extends FailOptions {
  until?: number;
}

export class Faults {
  private readonly random: () => number;
  private failing: ActiveFail[] = [];
  private losing: LoseOptions[] = [];
  private latencies: Array<{ ms: number }> = [];
  private readonly counts: FaultCounts = { failed: 0, rateLimited: 0, lost: 0 };

  constructor(seed: number) {
    this.random = mulberry32(seed);
  }

  fail(o: FailOptions): () => void {
    const f: ActiveFail = { ...o, ...(o.forMs !== undefined ? { until: Date.now() + o.forMs } : {}) };
    this.failing.push(f);
    return () => {
      this.failing = this.failing.filter((x) => x !== f);
    };
  }

  loseResponses(o: LoseOptions): () => void {
    const f = { ...o };
    this.losing.push(f);
    return () => {
      this.losing = this.losing.filter((x) => x !== f);
    };
  }

  slow(ms: number): () => void {
    const entry = { ms };
    this.latencies.push(entry);
    return () => {
      this.latencies = this.latencies.filter((x) => x !== entry);
    };
  }

  clear(): void {
    this.failing = [];
    this.losing = [];
    this.latencies = [];
  }

  injected(): FaultCounts {
    return { ...this.counts };
  }

  /** Total latency to add to an answer now. */
  latency(): number {
    let ms = 0;
    for (const l of this.latencies) ms += l.ms;
    return ms;
  }

  /** The refusal for this call, if one applies (counted). */
  refusal(routeKey: string): ActiveFail | undefined {
    if (this.failing.length === 0) return undefined;
    const now = Date.now();
    this.failing = this.failing.filter((f) => f.until === undefined || f.until > now);
    for (const f of this.failing) {
      if (f.route !== undefined && f.route !== routeKey) continue;
      if (f.ratio !== undefined && !(this.random() < f.ratio)) continue;
      if (f.status === 429) this.counts.rateLimited++;
      else this.counts.failed++;
      return f;
    }
    return undefined;
  }

  /** The loss for this applied call, if one applies (counted). Never for GET. */
  loss(routeKey: string, method: string): LoseOptions | undefined {
    if (method === 'GET' || method === 'HEAD' || this.losing.length === 0) return undefined;
    for (const f of this.losing) {
      if (f.route !== undefined && f.route !== routeKey) continue;
      if (!(this.random() < f.ratio)) continue;
      this.counts.lost++;
      return f;
    }
    return undefined;
  }
}
