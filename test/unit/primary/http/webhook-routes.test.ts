/** The webhook routes' trust rules: token before body, signatures with re-read, the inbox named by the payload. */
import { createHmac } from 'node:crypto';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../../src/config/load.js';
import { type AcceptedWebhook, webhookRoutes } from '../../../../src/primary/http/webhook-routes.js';
import { createLogger } from '../../../../src/observability/logger.js';

const SECRET = 'webhook-secret-0123456789';
const INBOX_SECRET = 'inbox-signing-secret';

function setup(o: { secret?: string; fresh?: string; env?: Record<string, string> } = {}) {
  const config = loadConfig({ CHATWOOT_BASE_URL: 'http://cw.test', CHATWOOT_API_ACCESS_TOKEN: 'tok', WEBHOOK_SECRET: SECRET, SERVER_HOST: '127.0.0.1', ...o.env });
  const accepted: AcceptedWebhook[] = [];
  let secret = o.secret;
  let refreshes = 0;
  const app = express();
  app.use(
    webhookRoutes({
      config,
      isInstance: (key) => key === '3-12',
      inboxSecrets: {
        current: () => secret,
        refresh: () => {
          refreshes += 1;
          if (o.fresh === undefined || o.fresh === secret) return Promise.resolve(undefined);
          secret = o.fresh;
          return Promise.resolve(secret);
        },
      },
      accept: (e) => {
        accepted.push(e);
        return Promise.resolve('direct');
      },
      log: createLogger({ level: 'silent' }),
    }),
  );
  return { app, accepted, refreshes: () => refreshes };
}

/** An agent reply in inbox 12 of account 3, as Chatwoot posts it. */
function agentReply(o: Record<string, unknown> = {}): string {
  return JSON.stringify({
    event: 'message_created',
    id: 77,
    content: 'Olá',
    message_type: 'outgoing',
    private: false,
    source_id: null,
    content_attributes: {},
    account: { id: 3 },
    inbox: { id: 12 },
    conversation: { id: 512, inbox_id: 12, contact_inbox: { source_id: '5511911112222@s.whatsapp.net' }, meta: { sender: {} } },
    sender: { type: 'user', name: 'Ana', email: 'ana@example.com' },
    ...o,
  });
}

function signed(body: string, secret: string, ts = Math.floor(Date.now() / 1000)): Record<string, string> {
  return { 'content-type': 'application/json', 'x-chatwoot-timestamp': String(ts), 'x-chatwoot-signature': `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}` };
}

const servers: Array<{ close(): void }> = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** Sends only the head of a request announcing a large body, and returns the status line Ponte answers with. */
async function headOnly(app: express.Express, path: string): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (c: Buffer) => {
      data += c.toString();
      if (data.includes('\r\n')) {
        socket.destroy();
        resolve(data.split('\r\n')[0]!);
      }
    });
    socket.on('error', reject);
    socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1900000\r\n\r\n`);
  });
}

describe('webhook routes', () => {
  it('refuse a wrong token before reading the body', async () => {
    const { app } = setup();
    expect(await headOnly(app, '/webhook/comando?token=wrong')).toMatch(/^HTTP\/1\.1 401/);
    expect(await headOnly(app, '/webhook/chatwoot/3-12?token=wrong')).toMatch(/^HTTP\/1\.1 401/);
    expect(await headOnly(app, '/webhook/chatwoot/3-12')).toMatch(/^HTTP\/1\.1 401/);
  });

  it('ignore (2xx) an event of another inbox posted to this inbox URL', async () => {
    const { app, accepted } = setup();
    const res = await request(app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set('content-type', 'application/json').send(agentReply({ inbox: { id: 13 }, conversation: { id: 9, inbox_id: 13 } }));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ignored: 'event of another inbox' });
    const ok = await request(app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set('content-type', 'application/json').send(agentReply());
    expect(ok.body).toMatchObject({ queued: 'send' });
    expect(accepted).toHaveLength(1);
  });

  it('refuse unsigned deliveries once the inbox secret is known, unless WEBHOOK_REQUIRE_SIGNATURE=false', async () => {
    const strict = setup({ secret: INBOX_SECRET });
    expect((await request(strict.app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set('content-type', 'application/json').send(agentReply())).status).toBe(401);
    const body = agentReply();
    expect((await request(strict.app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set(signed(body, INBOX_SECRET)).send(body)).status).toBe(200);
    const lax = setup({ secret: INBOX_SECRET, env: { WEBHOOK_REQUIRE_SIGNATURE: 'false' } });
    expect((await request(lax.app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set('content-type', 'application/json').send(agentReply())).status).toBe(200);
    expect((await request(lax.app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set(signed(body, 'another')).send(body)).status).toBe(401);
  });

  it('after Chatwoot resets the secret, re-reads it once before refusing', async () => {
    const { app, accepted, refreshes } = setup({ secret: 'old-secret', fresh: 'new-secret' });
    const body = agentReply();
    const res = await request(app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set(signed(body, 'new-secret')).send(body);
    expect(res.status).toBe(200);
    expect(refreshes()).toBe(1);
    expect(accepted).toHaveLength(1);
    // A forged signature still fails after the re-read.
    expect((await request(app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set(signed(body, 'forged')).send(body)).status).toBe(401);
  });

  it('answer 2xx for a malformed attachment URL and queue it (the send then fails with a reason)', async () => {
    const { app, accepted } = setup();
    const body = agentReply({ attachments: [{ id: 1, file_type: 'file', data_url: 'http://[bad', extension: 'pdf' }, { id: 2, file_type: 'file', data_url: 'http://cw.test/a/%E0%A4%A.pdf' }] });
    const res = await request(app).post(`/webhook/chatwoot/3-12?token=${SECRET}`).set('content-type', 'application/json').send(body);
    expect(res.status).toBe(200);
    expect(accepted).toHaveLength(1);
  });

  it('keep only commands from the account webhook, and nothing of Ponte’s own replies', async () => {
    const { app, accepted } = setup();
    const post = (b: Record<string, unknown>) => request(app).post(`/webhook/comando?token=${SECRET}`).set('content-type', 'application/json').send(JSON.stringify({ event: 'message_created', id: 5, account: { id: 3 }, inbox: { id: 12 }, conversation: { id: 1 }, message_type: 'incoming', ...b }));
    expect((await post({ content: 'bom dia' })).body).toMatchObject({ ignored: 'not a command' });
    expect((await post({ content: 'erga help', source_id: 'PONTE:abc' })).body).toMatchObject({ ignored: 'not a command' });
    expect((await post({ content: 'erga help' })).body).toMatchObject({ accepted: 'direct' });
    expect(accepted).toEqual([{ kind: 'command', command: expect.objectContaining({ id: 'message_created:5', signed: false }) as unknown }]);
  });
});
