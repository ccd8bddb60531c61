/** The send API's guard and validation: SEND_TOKEN alone, off (never open) while unset, 400 with the field before any worker call. */
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { controlErrorHandler } from '../../../../src/primary/http/errors.js';
import { sendRoutes } from '../../../../src/primary/http/send-routes.js';

const SEND = 'send-token-0123456789';
const ADMIN = 'admin-token-0123456789';
const STATUS = 'status-token-0123456789';

function app(sendToken: string | undefined) {
  const calls: unknown[] = [];
  const a = express();
  a.use(
    sendRoutes({
      control: {
        call: (instanceKey, op, args) => {
          calls.push({ instanceKey, op, args });
          return Promise.resolve({ reference: (args as { reference: string }).reference, conversationId: 5, messageId: 9, job: { kind: 'send' }, repeated: false });
        },
        known: () => Promise.resolve(),
      },
      enqueue: () => Promise.resolve(),
      statusOf: () => Promise.resolve({ status: 'sent' }),
      status: () => Promise.resolve(undefined),
      mediaTimeoutMs: 1000,
      sendToken,
      adminToken: ADMIN,
      statusToken: STATUS,
    }),
  );
  a.use(controlErrorHandler);
  return { app: a, calls };
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const answer = (r: { body: unknown }) => r.body as { message?: string; reference?: string };
const body = { instance: '1-2', to: '+55 21 9876-5432', text: 'Oi' };

describe('send routes', () => {
  it('answer 503 saying how to turn the API on while SEND_TOKEN is unset, to loopback and to every token', async () => {
    const { app: a, calls } = app(undefined);
    for (const headers of [{}, bearer(ADMIN), bearer(STATUS)]) {
      const r = await request(a).post('/api/send').set(headers).send(body);
      expect(r.status).toBe(503);
      expect(answer(r).message).toMatch(/set SEND_TOKEN/);
    }
    expect((await request(a).get('/api/send/x?instance=1-2')).status).toBe(503);
    expect(calls).toEqual([]);
  });

  it('refuse the admin and status tokens with their role named, and a missing or wrong token with 401', async () => {
    const { app: a, calls } = app(SEND);
    expect((await request(a).post('/api/send').send(body)).status).toBe(401);
    expect((await request(a).post('/api/send').set(bearer('wrong-token-0123456789')).send(body)).status).toBe(401);
    const admin = await request(a).post('/api/send').set(bearer(ADMIN)).send(body);
    expect(admin.status).toBe(403);
    expect(answer(admin).message).toMatch(/ADMIN_TOKEN cannot open the send API/);
    expect(answer(await request(a).post('/api/send').set(bearer(STATUS)).send(body)).message).toMatch(/STATUS_TOKEN/);
    // The token is checked before the body is read: a malformed body from a stranger is still a 401.
    expect((await request(a).post('/api/send').set('content-type', 'application/json').send('{not json')).status).toBe(401);
    expect(calls).toEqual([]);
  });

  it('normalise the number, generate a reference and answer 202 queued', async () => {
    const { app: a, calls } = app(SEND);
    const r = await request(a).post('/api/send').set(bearer(SEND)).send(body);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ conversationId: 5, messageId: 9, status: 'queued' });
    expect(answer(r).reference).toMatch(/^[0-9a-f-]{36}$/);
    expect(calls).toEqual([{ instanceKey: '1-2', op: 'send', args: { to: '5521998765432', text: 'Oi', reference: answer(r).reference } }]);
  });

  it('answer 400 naming each bad field, before asking the worker', async () => {
    const { app: a, calls } = app(SEND);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...body, to: 'abc' }, /^to: must be a phone number/],
      [{ ...body, text: '' }, /^text: is required unless attachmentUrl/],
      [{ ...body, attachmentUrl: 'ftp://x/y' }, /^attachmentUrl: must be an http\(s\) URL/],
      [{ ...body, options: ['Sim', 'sim'] }, /^options: must be different/],
      [{ ...body, reference: 'has spaces' }, /^reference: /],
      [{ ...body, cc: 'x' }, /cc/],
      [{ to: body.to, text: 'Oi' }, /^instance: is required/],
    ];
    for (const [b, reason] of cases) {
      const r = await request(a).post('/api/send').set(bearer(SEND)).send(b);
      expect(r.status, JSON.stringify(b)).toBe(400);
      expect(answer(r).message).toMatch(reason);
    }
    expect((await request(a).get('/api/send/ref-1').set(bearer(SEND))).status).toBe(400);
    expect((await request(a).get('/api/send/ref-1?instance=1-2').set(bearer(SEND))).status).toBe(404);
    expect(calls).toEqual([]);
  });
});
