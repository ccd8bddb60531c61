/**
 * The Chatwoot access check against the Chatwoot double and plain local
 * servers: each way a URL or token can be wrong gets its own kind and a
 * sentence that names it, and no sentence holds the token.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkChatwootAccess, type ChatwootAccessResult } from '../../../src/chatwoot/access-check.js';
import { ChatwootClient } from '../../../src/chatwoot/client.js';
import { freePort } from '../../../src/redis/redis-server.js';
import { startChatwootDouble, type ChatwootDouble } from '../../support/chatwoot-double/index.js';
import { TEST_MEDIA_CERT_PEM, TEST_MEDIA_KEY_PEM } from '../../support/whatsapp-server/media-tls.js';

let double: ChatwootDouble;
let first: number;
const servers: Array<http.Server | https.Server> = [];

beforeAll(async () => {
  double = await startChatwootDouble();
  first = double.addAccount().id;
});

afterAll(async () => {
  await double.close();
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
});

async function check(baseUrl: string, token: string, requireAdministrator = true): Promise<ChatwootAccessResult> {
  const client = new ChatwootClient({ baseUrl, apiAccessToken: token, timeoutMs: 3000, idempotentRetries: 0 });
  try {
    return await checkChatwootAccess(client, { baseUrl, requireAdministrator });
  } finally {
    await client.close();
  }
}

async function listen<S extends http.Server | https.Server>(server: S): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function expectProblem(r: ChatwootAccessResult, kind: string, says: RegExp, token: string): void {
  if (r.ok) throw new Error(`expected ${kind}, got access`);
  expect(r.kind).toBe(kind);
  expect(r.reason).toMatch(says);
  expect(r.reason).not.toContain(token);
}

describe('checkChatwootAccess', () => {
  it('an administrator’s token: the user and the accounts it administers', async () => {
    const r = await check(double.url, double.token);
    expect(r).toMatchObject({ ok: true, user: { id: 1, email: 'api@ponte.invalid' }, adminAccounts: [{ id: first, role: 'administrator' }] });
  });

  it('an agent’s token: not_admin naming the user and its roles, unless no administrator is required', async () => {
    const token = double.addUserToken({ name: 'Ana', email: 'ana@loja.com', roles: { [first]: 'agent' } });
    expectProblem(await check(double.url, token), 'not_admin', /ana@loja\.com.*not an administrator.*agent in "Conta 1" \(account 1\)/, token);
    expect(await check(double.url, token, false)).toMatchObject({ ok: true, adminAccounts: [], accounts: [{ id: first, role: 'agent' }] });
  });

  it('an agent bot’s token: bot_token', async () => {
    const token = double.addAgentBotToken();
    expectProblem(await check(double.url, token), 'bot_token', /agent bot's token.*user's access token/, token);
  });

  it('a wrong token: bad_token, with the nginx hint', async () => {
    expectProblem(await check(double.url, 'not-the-token'), 'bad_token', /refused the access token \(401 Invalid Access Token\).*underscores_in_headers/, 'not-the-token');
  });

  it('nothing listening: refused, naming the URL', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    expectProblem(await check(url, double.token), 'refused', new RegExp(`Chatwoot at ${url} refused the connection \\(ECONNREFUSED\\)`), double.token);
  });

  it('a host name that does not resolve: dns', async () => {
    expectProblem(await check('http://chatwoot.no-such-host.invalid', double.token), 'dns', /does not resolve \((ENOTFOUND|EAI_AGAIN)\)/, double.token);
  });

  it('a certificate Node does not trust: tls, with the way to trust it', async () => {
    const port = await listen(https.createServer({ cert: TEST_MEDIA_CERT_PEM, key: TEST_MEDIA_KEY_PEM }, (_q, r) => r.end('{}')));
    expectProblem(await check(`https://127.0.0.1:${port}`, double.token), 'tls', /certificate .* is not trusted.*NODE_EXTRA_CA_CERTS/, double.token);
  });

  it('https:// to a plain HTTP port: tls, suggesting http://', async () => {
    const port = new URL(double.url).port;
    expectProblem(await check(`https://127.0.0.1:${port}`, double.token), 'tls', /does not speak TLS.*http:\/\//, double.token);
  });

  it('a server that is not Chatwoot: not_chatwoot, for a 404 and for a 200 that is no profile', async () => {
    const port = await listen(http.createServer((q, r) => (q.url === '/api/v1/profile' ? r.end('<html>welcome</html>') : r.writeHead(404).end())));
    expectProblem(await check(`http://127.0.0.1:${port}`, double.token), 'not_chatwoot', /not a Chatwoot profile/, double.token);
    expectProblem(await check(`http://127.0.0.1:${port}/chatwoot`, double.token), 'not_chatwoot', /answered 404/, double.token);
  });

  it('credentials in the base URL never reach the reason', async () => {
    const url = `http://admin:hunter2@127.0.0.1:${await freePort()}`;
    const r = await check(url, double.token);
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r)).not.toContain('hunter2');
  });
});
