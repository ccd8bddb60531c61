import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/logger.js';

function collectingLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { log: createLogger({ level: 'debug', destination }), lines };
}

describe('logger redaction', () => {
  it('never writes tokens, secrets or message bodies', () => {
    const { log, lines } = collectingLogger();
    log.info({ token: 'tok-1', secret: 'sec-1', api_access_token: 'cw-1', content: 'hello body' }, 'top level');
    log.info({ request: { headers: { api_access_token: 'cw-2', authorization: 'Bearer b-1', 'x-ponte-token': 'p-1' } } }, 'nested headers');
    log.info({ message: { content: 'private words', text: 'more words', caption: 'a caption' } }, 'nested body');
    log.child({ module: 'chatwoot' }).warn({ config: { chatwoot: { apiAccessToken: 'cw-3' } } }, 'deep config');
    const out = lines.join('');
    for (const s of ['tok-1', 'sec-1', 'cw-1', 'hello body', 'cw-2', 'b-1', 'p-1', 'private words', 'more words', 'a caption']) {
      expect(out).not.toContain(s);
    }
    expect(out).toContain('[redacted]');
    expect(lines).toHaveLength(4);
  });
});

describe('logged errors', () => {
  it('keep only allow-listed fields: an HTTP client error never brings its request headers (the access token) along', async () => {
    const { createServer } = await import('node:http');
    const { request } = await import('undici');
    const { ChatwootClient } = await import('../../../src/chatwoot/client.js');
    // A server that takes the request and breaks the connection (undici's `UND_ERR_SOCKET`, which carries the socket).
    const server = createServer((req) => req.socket.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const token = 'cw-secret-access-token-42';
    const { log, lines } = collectingLogger();
    const raw = await request(`http://127.0.0.1:${port}/x`, { headers: { api_access_token: token, authorization: `Bearer ${token}` } }).catch((e: unknown) => e);
    expect(raw).toBeInstanceOf(Error);
    log.warn({ err: raw }, 'raw undici error');
    const client = new ChatwootClient({ baseUrl: `http://127.0.0.1:${port}`, apiAccessToken: token, timeoutMs: 2000, idempotentRetries: 0 });
    const wrapped = await client.getInbox(1, 1).catch((e: unknown) => e);
    log.warn({ err: wrapped }, 'chatwoot error with its cause');
    await client.close();
    server.close();
    const out = lines.join('');
    expect(out).not.toContain(token);
    expect(lines).toHaveLength(2);
    const second = JSON.parse(lines[1]!) as { err: { type: string; code: string; route: string; cause?: { message: string } } };
    expect(second.err).toMatchObject({
      type: 'ChatwootUnavailableError',
      code: 'CW_UNAVAILABLE',
      route: '/api/v1/accounts/{account_id}/inboxes/{id}',
      cause: { code: 'UND_ERR_SOCKET', message: expect.any(String) as unknown },
    });
  });
});
