/**
 * The primary's start-up check of Chatwoot over a scripted sequence of
 * results: not ready until a check passes, retried with backoff, one error
 * line per distinct problem, one line when it passes, nothing after close.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ChatwootAccessResult } from '../../../src/chatwoot/access-check.js';
import { createLogger } from '../../../src/observability/logger.js';
import { ChatwootStartupCheck } from '../../../src/primary/chatwoot-startup-check.js';

const refused: ChatwootAccessResult = { ok: false, kind: 'refused', reason: 'Chatwoot at http://cw refused the connection (ECONNREFUSED)' };
const badToken: ChatwootAccessResult = { ok: false, kind: 'bad_token', reason: 'Chatwoot at http://cw refused the access token (401 Invalid Access Token)' };
const agentOnly: ChatwootAccessResult = { ok: true, user: { id: 2, name: 'Ana', email: 'ana@loja.com' }, accounts: [{ id: 1, name: 'Loja', role: 'agent', status: 'active' }], adminAccounts: [] };

function harness(results: ChatwootAccessResult[], defaultAccountId?: number) {
  const lines: Array<{ level: number; msg: string }> = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { level: number; msg: string });
      done();
    },
  });
  const log = createLogger({ level: 'debug', destination });
  let calls = 0;
  const check = new ChatwootStartupCheck({
    check: () => Promise.resolve(results[Math.min(calls++, results.length - 1)]!),
    log,
    minDelayMs: 100,
    maxDelayMs: 400,
    defaultAccountId,
  });
  return { check, lines, calls: () => calls };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ChatwootStartupCheck', () => {
  it('fails, retries with backoff, logs each distinct problem once, and passes', async () => {
    vi.useFakeTimers();
    const h = harness([refused, refused, refused, badToken, badToken, agentOnly], 7);
    expect(h.check.status).toEqual({ state: 'checking' });
    h.check.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.check.status).toEqual({ state: 'failing', kind: 'refused', summary: 'Chatwoot refused the connection' });
    for (let i = 0; i < 5 && !h.check.ok; i++) await vi.advanceTimersByTimeAsync(400);
    expect(h.check.ok).toBe(true);
    expect(h.calls()).toBe(6);
    const errors = h.lines.filter((l) => l.level === 50).map((l) => l.msg);
    expect(errors).toEqual([expect.stringContaining('ECONNREFUSED'), expect.stringContaining('401 Invalid Access Token')]);
    expect(h.lines.filter((l) => l.msg === 'Chatwoot check passed after failing: ready')).toHaveLength(1);
    // An agent's token works for relaying; what it cannot do, and a default account it lacks, are warned about.
    const warnings = h.lines.filter((l) => l.level === 40).map((l) => l.msg);
    expect(warnings).toEqual([expect.stringContaining('administers no Chatwoot account'), expect.stringContaining('DEFAULT_CHATWOOT_ACCOUNT_ID')]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(h.calls()).toBe(6);
  });

  it('close stops the retries', async () => {
    vi.useFakeTimers();
    const h = harness([refused]);
    h.check.start();
    await vi.advanceTimersByTimeAsync(0);
    h.check.close();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(h.calls()).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a check that throws is a failure too, retried', async () => {
    vi.useFakeTimers();
    let n = 0;
    const check = new ChatwootStartupCheck({
      check: () => (n++ === 0 ? Promise.reject(new Error('boom')) : Promise.resolve(agentOnly)),
      log: createLogger({ level: 'silent' }),
      minDelayMs: 100,
      maxDelayMs: 400,
      defaultAccountId: undefined,
    });
    check.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(check.status).toMatchObject({ state: 'failing', kind: 'check_error' });
    await vi.advanceTimersByTimeAsync(400);
    expect(check.ok).toBe(true);
  });
});
