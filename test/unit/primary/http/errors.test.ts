/** The one table from control codes to HTTP statuses, as an operator meets it through the admin routes. */
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { ControlError } from '../../../../src/cluster/ipc.js';
import { controlErrorHandler } from '../../../../src/primary/http/errors.js';
import { operatorRoutes } from '../../../../src/primary/http/operator-routes.js';
import { NotAwaitingScanError } from '../../../../src/whatsapp/session.js';
import { controlPlane, unused } from '../../../support/control-plane.js';

const ADMIN = 'admin-token-0123456789';

/** The routes over a control plane whose worker calls fail with `failure`. */
function appFailingWith(failure: Error) {
  const control = controlPlane({}, failure);
  const refused = () => Promise.reject(failure);
  const a = express();
  a.use(operatorRoutes({ control, snapshot: refused, sandbox: undefined, inboxes: unused, adminToken: ADMIN, statusToken: undefined, publicUrl: undefined, importDays: 7 }));
  a.use(controlErrorHandler);
  a.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => void res.status(500).json({ error: 'internal' }));
  return a;
}

const pairingCode = (failure: Error) =>
  request(appFailingWith(failure))
    .post('/admin/instances/1-2/pairing-code')
    .set({ authorization: `Bearer ${ADMIN}` })
    .send({ phone: '+55 11 99999-0000' });

describe('control errors over HTTP', () => {
  it.each([
    [new ControlError('not_running', 'instance 1-2 is not running'), 409],
    [new NotAwaitingScanError('instance 1-2 is not waiting to be linked'), 409],
    [new ControlError('not_found', 'no instance 1-2'), 404],
    [new ControlError('bad_request', 'phone: must be a phone number'), 400],
    [new ControlError('worker_unavailable', 'the worker of 1-2 is restarting'), 503],
    [new ControlError('timeout', 'worker 0 did not answer pairing-code'), 504],
    [new ControlError('not_configured', 'Creating an inbox needs PUBLIC_URL'), 409],
    [new ControlError('chatwoot_refused', 'the access token is not an administrator of account 1'), 502],
    [new ControlError('chatwoot_unavailable', 'Chatwoot could not be reached'), 503],
  ])('%s answers %i with its code and reason', async (failure, status) => {
    const res = await pairingCode(failure);
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error: failure.code, message: failure.message });
  });

  it('an error without a control code is not dressed up as one: it goes on to the 500 handler', async () => {
    const res = await pairingCode(new Error('socket exploded'));
    expect(res.status).toBe(500);
    expect(JSON.stringify(res.body)).not.toContain('socket exploded');
  });
});
