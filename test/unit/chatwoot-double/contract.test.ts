/**
 * The double's route table against Chatwoot's own OpenAPI files: every route
 * it serves is an operation the spec (plus the documented omissions)
 * defines, the vendored spec is the shared one, and the code-over-spec
 * relaxations of `reference/chatwoot.md` §6 are the only departures.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkParams, Contract, SPEC_DIR, specOperations } from '../../support/chatwoot-double/contract.js';
import { startChatwootDouble, type ChatwootDouble } from '../../support/chatwoot-double/index.js';

/** `../shared/chatwoot` relative to the repository root. */
const SHARED_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../../shared/chatwoot');
const SHARED_PRESENT = existsSync(SHARED_DIR);
const FILES = ['swagger.json', 'swagger.missing-operations.json'];
const A = '/api/v1/accounts/{account_id}';

describe('the Chatwoot double’s route table', () => {
  let double: ChatwootDouble;
  beforeAll(async () => {
    double = await startChatwootDouble();
  });
  afterAll(async () => {
    await double.close();
  });

  it('serves only operations that Chatwoot’s merged spec defines, with that method', () => {
    const spec = specOperations();
    expect(double.routes.length).toBeGreaterThanOrEqual(20);
    expect(double.routes.filter((r) => !spec.has(r))).toEqual([]);
  });

  it('serves every operation the bridge uses', () => {
    expect(double.routes).toEqual(
      expect.arrayContaining([
        'GET /api/v1/profile',
        `GET ${A}/inboxes`,
        `GET ${A}/inboxes/{id}`,
        `POST ${A}/inboxes`,
        `PATCH ${A}/inboxes/{id}`,
        `POST ${A}/inbox_members`,
        'GET /api/v1/profile',
        `GET ${A}/contacts/{id}`,
        `PUT ${A}/contacts/{id}`,
        `GET ${A}/contacts/search`,
        `POST ${A}/contacts/filter`,
        `POST ${A}/contacts`,
        `POST ${A}/contacts/{id}/contact_inboxes`,
        `POST ${A}/contact_inboxes/filter`,
        `POST ${A}/actions/contact_merge`,
        `GET ${A}/contacts/{id}/conversations`,
        `GET ${A}/conversations`,
        `POST ${A}/conversations`,
        `GET ${A}/conversations/{conversation_id}`,
        `POST ${A}/conversations/{conversation_id}/toggle_status`,
        `POST ${A}/conversations/{conversation_id}/messages`,
        `GET ${A}/conversations/{conversation_id}/messages`,
        `PATCH ${A}/conversations/{conversation_id}/messages/{message_id}`,
        `DELETE ${A}/conversations/{conversation_id}/messages/{message_id}`,
      ]),
    );
  });
});

describe('the contract', () => {
  const contract = new Contract();

  it('relaxes only what Chatwoot’s code does not require', () => {
    const message = contract.operation('POST', `${A}/conversations/{conversation_id}/messages`)!;
    expect(message.body?.json?.({ message_type: 'incoming' })).toBe(true);
    expect(message.body?.json?.({ content: 'x', message_type: 'sideways' })).toBe(false);
    expect(contract.operation('POST', `${A}/contacts`)!.body?.json?.({ name: 'x' })).toBe(true);
    expect(contract.operation('POST', `${A}/conversations`)!.body?.json?.({ inbox_id: 1, contact_id: 2 })).toBe(true);
    const merge = contract.operation('POST', `${A}/actions/contact_merge`)!;
    expect(merge.body?.json?.({ base_contact_id: 1 })).toBe(false);
    const filter = contract.operation('POST', `${A}/contacts/filter`)!;
    expect(filter.body?.json?.({})).toBe(false);
    expect(filter.body?.json?.({ payload: [{ attribute_key: 'phone_number', filter_operator: 'starts_with', values: ['+55'], query_operator: null }] })).toBe(true);
    expect(message.body?.multipart?.message_type?.enum).toEqual(['outgoing', 'incoming']);
  });

  it('checks integer path parameters and declared query parameters, undocumented ones included', () => {
    const list = contract.operation('GET', `${A}/conversations`)!;
    expect(checkParams(list, { account_id: '1' }, new URLSearchParams('status=all&source_id=x&inbox_id=3&page=2'))).toEqual([]);
    expect(checkParams(list, { account_id: 'one' }, new URLSearchParams('status=closed'))).toHaveLength(2);
    const messages = contract.operation('GET', `${A}/conversations/{conversation_id}/messages`)!;
    expect(checkParams(messages, { account_id: '1', conversation_id: '2' }, new URLSearchParams('before=10&after=2'))).toEqual([]);
    expect(checkParams(messages, { account_id: '1', conversation_id: '2' }, new URLSearchParams('after=x'))).toHaveLength(1);
  });
});

describe('the vendored spec', () => {
  if (!SHARED_PRESENT) {
    console.warn(`${SHARED_DIR} is absent: the vendored copy in test/support/chatwoot-double/spec is the contract, and cannot be compared with the shared one.`);
  }

  it('is present', () => {
    for (const f of FILES) expect(existsSync(join(SPEC_DIR, f)), f).toBe(true);
  });

  it.skipIf(!SHARED_PRESENT)('is byte-identical to ../shared/chatwoot (skipped when ../shared/chatwoot is absent: the vendored copy is then the contract)', () => {
    for (const f of FILES) expect(readFileSync(join(SPEC_DIR, f), 'utf8'), f).toBe(readFileSync(join(SHARED_DIR, f), 'utf8'));
  });
});
