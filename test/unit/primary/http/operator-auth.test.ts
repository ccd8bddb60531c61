/** The operator routes' guards: one role per token, and "no token" trusts only direct connections from this host. */
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { operatorRoutes } from '../../../../src/primary/http/operator-routes.js';
import type { GlobalStatus } from '../../../../src/model/global-status.js';
import type { InstanceRecord } from '../../../../src/model/instance.js';
import { controlPlane, unused } from '../../../support/control-plane.js';

const ADMIN = 'admin-token-0123456789';
const STATUS = 'status-token-0123456789';

/** The app with stand-ins for the control plane: a create is recorded, nothing else happens. */
function app(tokens: { adminToken?: string; statusToken?: string }) {
  const created: unknown[] = [];
  const record: InstanceRecord = { instanceKey: '1-2', accountId: 1, inboxId: 2, desired: 'running', createdAtMs: 0, updatedAtMs: 0 };
  const control = controlPlane({
    create: (request) => {
      created.push(request);
      return Promise.resolve({ record, created: true, slot: 0 });
    },
  });
  const snapshot = (): Promise<GlobalStatus> =>
    Promise.resolve({
      primary: { host: 'test-host', pid: process.pid, uptimeS: 0, version: 'test', cpuS: 0 },
      hosts: [],
      workers: [],
      totals: { instances: 0, open: 0, received: 0, relayed: 0, sent: 0, failed: 0, retried: 0, parked: 0, inboundQueue: 0, outboundQueue: 0, outboundHeld: 0 },
      instances: [],
    });
  const sandbox = { readReceipts: () => Promise.resolve([]), outbox: () => Promise.resolve([]), sockets: () => Promise.resolve([]) };
  const a = express();
  a.use(operatorRoutes({ control, snapshot, sandbox, inboxes: unused, adminToken: tokens.adminToken, statusToken: tokens.statusToken, publicUrl: undefined, importDays: 7 }));
  return { app: a, created };
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('operator routes without tokens', () => {
  it('let in direct loopback connections only: a request relayed by a proxy on this host is refused', async () => {
    const { app: a, created } = app({});
    expect((await request(a).get('/global-status')).status).toBe(200);
    for (const header of [{ 'x-forwarded-for': '203.0.113.7' }, { forwarded: 'for=203.0.113.7' }, { 'x-real-ip': '203.0.113.7' }]) {
      const status = await request(a).get('/global-status').set(header);
      expect(status.status).toBe(403);
      expect(status.body).toMatchObject({ error: 'forbidden', message: expect.stringMatching(/direct connections from this host/) as unknown });
      expect((await request(a).post('/admin/instances').set(header).send({ inbox: 2, account: 1 })).status).toBe(403);
      expect((await request(a).post('/sandbox/instances/1-2/scan').set(header).send({ phone: '5511999990000' })).status).toBe(403);
    }
    expect(created).toEqual([]);
  });
});

describe('one role per token', () => {
  it('the status token reads status and metrics, never the admin API', async () => {
    const { app: a, created } = app({ statusToken: STATUS });
    expect((await request(a).get('/global-status').set(bearer(STATUS))).status).toBe(200);
    expect((await request(a).get('/metrics').set(bearer(STATUS))).status).toBe(200);
    // Without an admin token the admin API is for direct local connections; the status token opens nothing there.
    expect((await request(a).post('/admin/instances').set({ ...bearer(STATUS), 'x-forwarded-for': '203.0.113.7' }).send({ inbox: 2, account: 1 })).status).toBe(403);
    expect((await request(a).get('/admin/instances').set({ ...bearer(STATUS), 'x-forwarded-for': '203.0.113.7' })).status).toBe(403);
    expect(created).toEqual([]);
  });

  it('the admin token opens the admin API and reads the status too; the status token is refused by the admin API', async () => {
    const { app: a, created } = app({ adminToken: ADMIN, statusToken: STATUS });
    expect((await request(a).get('/global-status').set(bearer(ADMIN))).status).toBe(200);
    expect((await request(a).post('/admin/instances').set(bearer(STATUS)).send({ inbox: 2, account: 1 })).status).toBe(401);
    expect((await request(a).post('/admin/instances').set(bearer(ADMIN)).send({ inbox: 2, account: 1 })).status).toBe(201);
    expect(created).toHaveLength(1);
  });

  it('with only the admin token set, the status routes take it (from anywhere) and refuse anything else', async () => {
    const { app: a } = app({ adminToken: ADMIN });
    expect((await request(a).get('/global-status').set({ ...bearer(ADMIN), 'x-forwarded-for': '203.0.113.7' })).status).toBe(200);
    expect((await request(a).get('/global-status')).status).toBe(401);
  });

  it('checks the token before reading a body', async () => {
    const { app: a } = app({ adminToken: ADMIN });
    // A body over the JSON limit: read first, it would be a 413.
    const res = await request(a).post('/admin/instances').set({ ...bearer('wrong-token-0123456789'), 'content-type': 'application/json' }).send(`{"pad":"${'x'.repeat(21 * 1024 * 1024)}"}`);
    expect(res.status).toBe(401);
  });
});
