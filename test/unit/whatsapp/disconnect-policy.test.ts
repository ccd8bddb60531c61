import { describe, expect, it } from 'vitest';
import { closeError, decideOnClose } from '../../../src/whatsapp/disconnect-policy.js';

describe('decideOnClose (DESIGN.md, Decisions 2)', () => {
  it.each([
    [515, 'Stream Errored (restart required)', 'reconnect_now'],
    [401, 'Connection Failure', 'logged_out'],
    [408, 'QR refs attempts ended', 'qr_expired'],
    [408, 'Connection was lost', 'reconnect_backoff'],
    [428, 'Connection Closed', 'reconnect_backoff'],
    [500, 'Stream Errored (unknown)', 'reconnect_backoff'],
    [503, 'Service Unavailable', 'reconnect_backoff'],
    [440, 'Stream Errored (conflict)', 'stop_alert'],
    [403, 'Connection Failure', 'stop_alert'],
    [405, 'Connection Failure', 'stop_alert'],
    [411, 'Multidevice mismatch', 'stop_alert'],
  ])('%i %s → %s', (code, message, action) => {
    expect(decideOnClose(closeError(code, message))).toMatchObject({ action, code });
  });

  it('an error without a status code is a bad session (500): reconnect with backoff, never a wipe', () => {
    expect(decideOnClose(new Error('socket hang up'))).toMatchObject({ action: 'reconnect_backoff', code: 500 });
    expect(decideOnClose(undefined)).toMatchObject({ action: 'reconnect_backoff', code: 500 });
  });

  it('names the reason for logs and alerts', () => {
    expect(decideOnClose(closeError(440, 'conflict')).reason).toBe('connectionReplaced: conflict');
  });
});
