/**
 * The Chatwoot client against plain local HTTP servers: what each kind of
 * answer (or its absence) becomes, and which calls are retried.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ChatwootClient, parseRetryAfter } from '../../../src/chatwoot/client.js';
import {
  ChatwootConversationLimitError,
  ChatwootError,
  ChatwootLostResponseError,
  ChatwootNotFoundError,
  ChatwootRateLimitedError,
  ChatwootRejectedError,
  ChatwootUnauthorizedError,
  ChatwootUnavailableError,
  ChatwootUnprocessableError,
} from '../../../src/chatwoot/errors.js';
import { classifyChatwootFailure } from '../../../src/inbound/chatwoot-failures.js';
import { freePort } from '../../../src/redis/redis-server.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Handler = (req: Seen, res: http.ServerResponse, n: number) => void;

const servers: http.Server[] = [];

async function serve(handler: Handler): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(s);
      handler(s, res, seen.length);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function client(url: string, timeoutMs = 2000): ChatwootClient {
  return new ChatwootClient({ baseUrl: url, apiAccessToken: 'secret-token', timeoutMs, idempotentRetries: 2, retryBaseDelayMs: 1 });
}

async function rejection(p: Promise<unknown>): Promise<ChatwootError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ChatwootError);
    return err as ChatwootError;
  }
  throw new Error('expected the call to fail');
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

describe('ChatwootClient', () => {
  it('sends the token, expands the route, and returns the payload', async () => {
    const { url, seen } = await serve((_req, res) => json(res, 200, { payload: [{ id: 4, name: 'Ana' }], meta: {} }));
    const contacts = await client(url).filterContacts(3, [{ attribute_key: 'phone_number', filter_operator: 'equal_to', values: ['+5511987654321'] }]);
    expect(contacts).toEqual([{ id: 4, name: 'Ana' }]);
    expect(seen[0]?.method).toBe('POST');
    expect(seen[0]?.url).toBe('/api/v1/accounts/3/contacts/filter?page=1');
    expect(seen[0]?.headers.api_access_token).toBe('secret-token');
    expect(JSON.parse(seen[0]!.body.toString())).toEqual({
      payload: [{ attribute_key: 'phone_number', filter_operator: 'equal_to', values: ['+5511987654321'] }],
    });
  });

  it('keeps the base URL: its path before every route, its credentials as basic auth', async () => {
    const { url, seen } = await serve((_req, res) => json(res, 200, { id: 7, name: 'Vendas' }));
    const withPath = url.replace('http://', 'http://proxy:p%40ss@') + '/chatwoot/';
    const inbox = await client(withPath).getInbox(3, 7);
    expect(inbox).toMatchObject({ id: 7 });
    expect(seen[0]?.url).toBe('/chatwoot/api/v1/accounts/3/inboxes/7');
    expect(seen[0]?.headers.authorization).toBe(`Basic ${Buffer.from('proxy:p@ss').toString('base64')}`);
  });

  it('an answer that trickles past the deadline times out like no answer at all', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"payload":');
      // The rest never comes within the client's deadline.
    });
    const read = await rejection(client(url, 150).getInbox(1, 1));
    expect(read).toBeInstanceOf(ChatwootUnavailableError);
    expect(read.message).toContain('timed out');
  });

  it('classifies each 4xx: 404 not found, 422 with attributes, 403 rejected, 401 unauthorized (retryable)', async () => {
    const answers: Record<string, [number, unknown]> = {
      '/api/v1/accounts/1/contacts/404': [404, { error: 'Resource could not be found' }],
      '/api/v1/accounts/1/contacts/422': [422, { message: 'Phone number has already been taken', attributes: ['phone_number'] }],
      '/api/v1/accounts/1/contacts/403': [403, { error: 'You are not authorized to do this action' }],
      '/api/v1/accounts/1/contacts/401': [401, { error: 'Invalid Access Token' }],
    };
    const { url, seen } = await serve((req, res) => {
      const [status, body] = answers[req.url.split('?')[0]!]!;
      json(res, status, body);
    });
    const c = client(url);
    const notFound = await rejection(c.getContact(1, 404));
    expect(notFound).toBeInstanceOf(ChatwootNotFoundError);
    expect(notFound.kind).toBe('permanent');
    expect(notFound.code).toBe('CW_NOT_FOUND');
    expect(notFound.status).toBe(404);
    expect(notFound.route).toBe('/api/v1/accounts/{account_id}/contacts/{id}');

    const invalid = await rejection(c.updateContact(1, 422, { phone_number: '+5511987654321' }));
    expect(invalid).toBeInstanceOf(ChatwootUnprocessableError);
    expect((invalid as ChatwootUnprocessableError).attributes).toEqual(['phone_number']);
    expect(invalid.message).toContain('Phone number has already been taken');

    const forbidden = await rejection(c.getContact(1, 403));
    expect(forbidden).toBeInstanceOf(ChatwootRejectedError);
    expect(forbidden.kind).toBe('permanent');
    expect(forbidden.retryable).toBe(false);

    const unauthorized = await rejection(c.getContact(1, 401));
    expect(unauthorized).toBeInstanceOf(ChatwootUnauthorizedError);
    expect(unauthorized.kind).toBe('retryable');
    // Permanent answers are never repeated; the 401 is retried like an outage.
    expect(seen.filter((s) => s.url.includes('/404')).length).toBe(1);
    expect(seen.filter((s) => s.url.includes('/401')).length).toBe(3);
  });

  it("reads Chatwoot's per-conversation limit (a 422 that says so only in its text) into its own type, which the inbound flow paces on", async () => {
    const { url } = await serve((_req, res) => json(res, 422, { error: 'Validation failed: Too many messages' }));
    const limited = await rejection(client(url).createMessage(1, 7, { content: 'oi', message_type: 'incoming' }));
    expect(limited).toBeInstanceOf(ChatwootConversationLimitError);
    expect(limited.code).toBe('CW_CONVERSATION_LIMIT');
    expect(classifyChatwootFailure(limited)).toMatchObject({ kind: 'paced', code: 'CW_CONVERSATION_LIMIT' });
    // Any other 422 is the message's own fault: parked.
    const { url: other } = await serve((_req, res) => json(res, 422, { error: 'Validation failed: Content is too long' }));
    const invalid = await rejection(client(other).createMessage(1, 7, { content: 'oi', message_type: 'incoming' }));
    expect(invalid).not.toBeInstanceOf(ChatwootConversationLimitError);
    expect(classifyChatwootFailure(invalid)).toMatchObject({ kind: 'permanent', code: 'CW_UNPROCESSABLE' });
  });

  it('never puts the token in an error', async () => {
    const { url } = await serve((_req, res) => json(res, 404, { error: 'Resource could not be found' }));
    const err = await rejection(client(url).getInbox(1, 2));
    expect(JSON.stringify({ message: err.message, route: err.route })).not.toContain('secret-token');
  });

  it('retries a read through a passing 5xx and returns its answer', async () => {
    const { url, seen } = await serve((_req, res, n) => (n < 3 ? json(res, 503, { error: 'down' }) : json(res, 200, { id: 9, name: 'Vendas', channel_type: 'Channel::Api' })));
    const inbox = await client(url).getInbox(1, 9);
    expect(inbox.name).toBe('Vendas');
    expect(seen).toHaveLength(3);
  });

  it('gives up on a read after its retries with a retryable error', async () => {
    const { url, seen } = await serve((_req, res) => json(res, 500, { error: 'boom' }));
    const err = await rejection(client(url).getConversation(1, 5));
    expect(err).toBeInstanceOf(ChatwootUnavailableError);
    expect(err.retryable).toBe(true);
    expect(seen).toHaveLength(3);
  });

  it('reports a 5xx on a create as a lost response and never repeats the create', async () => {
    const { url, seen } = await serve((_req, res) => json(res, 500, { error: 'boom' }));
    const err = await rejection(client(url).createMessage(1, 5, { content: 'oi', message_type: 'incoming', source_id: 'WAID:X' }));
    expect(err).toBeInstanceOf(ChatwootLostResponseError);
    expect(err.kind).toBe('lost_response');
    expect(seen).toHaveLength(1);
  });

  it('429: rate limited, with and without Retry-After (seconds or date)', async () => {
    const { url, seen } = await serve((req, res) => {
      if (req.url.includes('/conversations/1/')) {
        res.writeHead(429, { 'content-type': 'text/plain' });
        res.end('Retry later\n');
      } else json(res, 429, { error: 'slow down' }, { 'retry-after': '2' });
    });
    const c = client(url);
    const bare = await rejection(c.createMessage(1, 1, { content: 'a', message_type: 'incoming' }));
    expect(bare).toBeInstanceOf(ChatwootRateLimitedError);
    expect(bare.kind).toBe('rate_limited');
    expect((bare as ChatwootRateLimitedError).retryAfterMs).toBeUndefined();
    expect(bare.message).toContain('Retry later');
    const timed = await rejection(c.createMessage(1, 2, { content: 'a', message_type: 'incoming' }));
    expect((timed as ChatwootRateLimitedError).retryAfterMs).toBe(2000);
    // A create is not repeated by the client even when rate limited.
    expect(seen).toHaveLength(2);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:10 GMT', Date.parse('Wed, 21 Oct 2026 07:28:00 GMT'))).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });

  it('a timeout: retryable on a read, a lost response on a create', async () => {
    const { url, seen } = await serve(() => undefined); // never answers
    const c = client(url, 150);
    const read = await rejection(c.listMessages(1, 2, { after: 10 }));
    expect(read).toBeInstanceOf(ChatwootUnavailableError);
    expect(read.message).toContain('timed out');
    const create = await rejection(c.createConversation(1, { source_id: 's', inbox_id: 2, contact_id: 3 }));
    expect(create).toBeInstanceOf(ChatwootLostResponseError);
    expect(seen.filter((s) => s.method === 'GET')).toHaveLength(3);
    expect(seen.filter((s) => s.method === 'POST')).toHaveLength(1);
  });

  it('a connection dropped after the request arrived is a lost response for a create', async () => {
    const { url, seen } = await serve((_req, res) => res.socket?.destroy());
    const err = await rejection(client(url).createContact(1, { inbox_id: 2, name: 'Ana' }));
    expect(err).toBeInstanceOf(ChatwootLostResponseError);
    expect(seen).toHaveLength(1);
  });

  it('connection refused is an outage, even for a create (nothing was sent)', async () => {
    const port = await freePort();
    const err = await rejection(client(`http://127.0.0.1:${port}`).createMessage(1, 2, { content: 'x', message_type: 'incoming' }));
    expect(err).toBeInstanceOf(ChatwootUnavailableError);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('finds a contact by source id, or null on 404', async () => {
    const { url, seen } = await serve((req, res) => {
      const body = JSON.parse(req.body.toString()) as { source_id: string };
      if (body.source_id === 'known') json(res, 200, { id: 7, name: 'Ana' });
      else {
        res.writeHead(404);
        res.end();
      }
    });
    const c = client(url);
    expect(await c.findContactBySourceId(1, 2, 'known')).toMatchObject({ id: 7 });
    expect(await c.findContactBySourceId(1, 2, 'unknown')).toBeNull();
    expect(seen[0]?.url).toBe('/api/v1/accounts/1/contact_inboxes/filter');
  });

  it('sends attachments as multipart with the fields Chatwoot reads', async () => {
    const { url, seen } = await serve((_req, res) => json(res, 200, { id: 11, content: 'legenda', message_type: 0, source_id: 'WAID:M' }));
    const msg = await client(url).createMessageWithAttachments(
      1,
      2,
      { content: 'legenda', message_type: 'incoming', source_id: 'WAID:M', content_attributes: { in_reply_to: 5 } },
      [{ fileName: 'foto.jpg', contentType: 'image/jpeg', data: Buffer.from([0xff, 0xd8, 0xff]) }],
    );
    expect(msg.id).toBe(11);
    const req = seen[0]!;
    const form = await new Response(new Uint8Array(req.body), { headers: { 'content-type': String(req.headers['content-type']) } }).formData();
    expect(form.get('content')).toBe('legenda');
    expect(form.get('message_type')).toBe('incoming');
    expect(form.get('source_id')).toBe('WAID:M');
    expect(JSON.parse(form.get('content_attributes') as string)).toEqual({ in_reply_to: 5 });
    const file = form.get('attachments[]') as File;
    expect(file.name).toBe('foto.jpg');
    expect(file.type).toBe('image/jpeg');
    expect(Buffer.from(await file.arrayBuffer())).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
  });
});
