/** A worker's answers to control calls: codes of the contract cross as they are, anything else is internal and logged. */
import { describe, expect, it } from 'vitest';
import { ControlError } from '../../../src/cluster/ipc.js';
import { createLogger } from '../../../src/observability/logger.js';
import { InstanceHost } from '../../../src/worker/instance-host.js';
import type { InstanceRuntimeDeps } from '../../../src/worker/instance-runtime.js';
import { FileAuthStore } from '../../../src/whatsapp/auth-store.js';
import { NotAwaitingScanError } from '../../../src/whatsapp/session.js';

function host(driverHandlers: ConstructorParameters<typeof InstanceHost>[0]['driverHandlers']) {
  const lines: string[] = [];
  const log = createLogger({ level: 'error', base: {}, destination: { write: (line: string) => void lines.push(line) } });
  // No instance is assigned in these tests, so the runtime's dependencies are never used.
  const runtime = {} as InstanceRuntimeDeps;
  return { host: new InstanceHost({ runtime, auth: new FileAuthStore('/nonexistent'), log, driverHandlers }), lines };
}

describe('InstanceHost.answer', () => {
  it('answers a result, and the codes of the control contract with their message', async () => {
    const { host: h, lines } = host({
      'sandbox.scan': () => Promise.resolve({ ok: true }),
      'sandbox.message': () => Promise.reject(new ControlError('not_connected', 'instance 1-2 has no open sandbox socket')),
    });
    expect(await h.answer(1, 'sandbox.scan', '1-2', {})).toEqual({ type: 'response', id: 1, ok: true, result: { ok: true } });
    expect(await h.answer(2, 'sandbox.message', '1-2', {})).toEqual({ type: 'response', id: 2, ok: false, error: { code: 'not_connected', message: 'instance 1-2 has no open sandbox socket' } });
    expect(await h.answer(3, 'pairing-code', '1-2', { phone: '5511999990000' })).toMatchObject({ ok: false, error: { code: 'not_running' } });
    expect(await h.answer(4, 'no-such-op', '1-2', {})).toMatchObject({ ok: false, error: { code: 'bad_request', message: 'unknown operation no-such-op' } });
    expect(lines).toEqual([]);
  });

  it('keeps an AppError code of the contract raised below the worker (the session refusing a pairing code)', async () => {
    const { host: h } = host({ 'sandbox.scan': () => Promise.reject(new NotAwaitingScanError('instance 1-2 is not waiting to be linked (state open)')) });
    expect(await h.answer(5, 'sandbox.scan', '1-2', {})).toMatchObject({ ok: false, error: { code: 'NOT_AWAITING_SCAN' } });
  });

  it('answers any other failure as internal, without its details, and logs them', async () => {
    const { host: h, lines } = host({ 'sandbox.scan': () => Promise.reject(new Error('redis exploded at 10.0.0.5')) });
    const answer = await h.answer(6, 'sandbox.scan', '1-2', {});
    expect(answer).toEqual({ type: 'response', id: 6, ok: false, error: { code: 'internal', message: 'sandbox.scan failed; see the worker log' } });
    expect(lines.join('')).toContain('redis exploded at 10.0.0.5');
  });
});
