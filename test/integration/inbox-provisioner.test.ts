/**
 * The inbox a new instance gets: created once per request whatever is
 * repeated or lost on the way, pointed at Ponte, its secret read, its member
 * added; Chatwoot's refusals become sentences an operator can act on.
 * Against the Chatwoot double through Ponte's own client, on the real Redis.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChatwootClient } from '../../src/chatwoot/client.js';
import { ChatwootLostResponseError } from '../../src/chatwoot/errors.js';
import { ControlError } from '../../src/cluster/ipc.js';
import { createLogger } from '../../src/observability/logger.js';
import { InboxProvisioner, type InboxProvisionerDeps, placeholderUrl } from '../../src/primary/commands/inbox-provisioner.js';
import { InboxSecrets } from '../../src/primary/inbox-secrets.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { deleteKeys, randomPrefix, testRedis } from '../support/redis.js';

const PUBLIC_URL = 'https://ponte.example.com';
const SECRET = 'provisioner-webhook-secret';
const INBOXES = 'POST /api/v1/accounts/{account_id}/inboxes';
const redis = testRedis();
const prefix = randomPrefix();
const keys = new RedisKeys(prefix);
const log = createLogger({ level: 'silent' });

let double: ChatwootDouble;
let chatwoot: ChatwootClient;
let secrets: InboxSecrets;
let accountId: number;

function provisioner(o: Partial<InboxProvisionerDeps> = {}): InboxProvisioner {
  return new InboxProvisioner({ chatwoot, redis, keys, publicUrl: PUBLIC_URL, webhookSecret: SECRET, secrets, log, ...o });
}

beforeEach(async () => {
  double = await startChatwootDouble({ webhooksEnabled: false });
  accountId = double.addAccount().id;
  chatwoot = new ChatwootClient({ baseUrl: double.url, apiAccessToken: double.token, timeoutMs: 1000, retryBaseDelayMs: 10 });
  secrets = new InboxSecrets({ chatwoot, redis, keys, log, retryDelayMs: { min: 20, max: 50 } });
});

afterEach(async () => {
  secrets.close();
  await chatwoot.close();
  await double.close();
});

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('InboxProvisioner', () => {
  it('creates the inbox, sets its webhook to the instance with the token, reads its secret and adds the member', async () => {
    const ana = double.addUser({ name: 'Ana', email: 'ana@example.com' }).id;
    const made = await provisioner().provision({ accountId, name: 'Loja', memberUserId: ana, ref: 'r1' });
    const inbox = double.inboxes(accountId)[0]!;
    expect(made).toEqual({ accountId, inboxId: inbox.id, name: 'Loja', instanceKey: `${accountId}-${inbox.id}`, secretKnown: true, memberUserId: ana, reused: false });
    expect(inbox.webhook_url).toBe(`${PUBLIC_URL}/webhook/chatwoot/${accountId}-${inbox.id}?token=${SECRET}`);
    expect(inbox.members).toEqual([ana]);
    expect(secrets.current(made.instanceKey)).toBe(inbox.secret);
    expect(double.violations).toEqual([]);
  });

  it('a repeat of the same request reuses its inbox, and the token’s user is the member when none is named', async () => {
    const first = await provisioner().provision({ accountId, name: 'Loja', ref: 'r2' });
    const again = await provisioner().provision({ accountId, name: 'Loja', ref: 'r2' });
    expect(again).toMatchObject({ inboxId: first.inboxId, reused: true, memberUserId: 1 });
    expect(double.inboxes(accountId)).toHaveLength(1);
    const other = await provisioner().provision({ accountId, name: 'Loja', ref: 'r3' });
    expect(other.inboxId).not.toBe(first.inboxId);
  });

  it('a create whose answer was lost is found by its placeholder, now or at the next try: never a second inbox', async () => {
    const lose = double.faults.loseResponses({ ratio: 1, mode: 'status', status: 502, route: INBOXES });
    const made = await provisioner().provision({ accountId, name: 'Perdida', ref: 'r4' });
    lose();
    expect(double.inboxes(accountId)).toHaveLength(1);
    expect(made).toMatchObject({ inboxId: double.inboxes(accountId)[0]!.id, reused: false });
    expect(double.inboxes(accountId)[0]!.webhook_url).toContain(`/webhook/chatwoot/${made.instanceKey}?token=`);

    // A run that ended before it could look (a crash, or the list failing too) leaves the inbox with its
    // placeholder: the next run of the same request takes it over.
    const orphan = double.addInbox({ accountId, name: 'Outra', webhookUrl: placeholderUrl(PUBLIC_URL, 'r5') });
    const retried = await provisioner().provision({ accountId, name: 'Outra', ref: 'r5' });
    expect(retried).toMatchObject({ inboxId: orphan.id, reused: true });
    expect(double.inboxes(accountId)).toHaveLength(2);
    expect(double.inboxes(accountId)[1]!.webhook_url).toBe(`${PUBLIC_URL}/webhook/chatwoot/${retried.instanceKey}?token=${SECRET}`);
  });

  it('refusals become sentences: no administrator, an invalid token, a blank name, an unknown member after the inbox was made', async () => {
    const refusal = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => err as ControlError);
    double.setTokenRole(accountId, 'agent');
    const agent = await refusal(provisioner().provision({ accountId, name: 'Loja', ref: 'r6' }));
    expect(agent).toBeInstanceOf(ControlError);
    expect(agent).toMatchObject({ code: 'chatwoot_refused', message: `The access token's user (api@ponte.invalid) is an agent of account ${accountId}, not an administrator: only administrators create inboxes. Put an administrator's access token in CHATWOOT_API_ACCESS_TOKEN.` });
    double.setTokenRole(accountId, 'administrator');

    const bad = new ChatwootClient({ baseUrl: double.url, apiAccessToken: 'not-the-token', timeoutMs: 1000, idempotentRetries: 0 });
    try {
      expect(await refusal(provisioner({ chatwoot: bad }).provision({ accountId, name: 'Loja', ref: 'r7' }))).toMatchObject({ code: 'chatwoot_refused', message: expect.stringContaining('is not an administrator of account') as unknown });
    } finally {
      await bad.close();
    }
    expect(await refusal(provisioner().provision({ accountId: 999, name: 'Loja', ref: 'r8' }))).toMatchObject({ message: expect.stringContaining('is not in account 999') as unknown });
    expect(await refusal(provisioner().provision({ accountId, name: ' ', ref: 'r9' }))).toMatchObject({ message: expect.stringContaining("Name can't be blank") as unknown });
    expect(double.inboxes(accountId)).toEqual([]);

    const stranger = await refusal(provisioner().provision({ accountId, name: 'Loja', memberUserId: 4242, ref: 'r10' }));
    const inbox = double.inboxes(accountId)[0]!;
    expect(stranger).toMatchObject({ code: 'chatwoot_refused', message: expect.stringContaining(`Inbox "Loja" (id ${inbox.id}) was created in account ${accountId}, but Chatwoot refused to make user 4242 a member`) as unknown });
    expect(double.violations).toEqual([]);
  });

  it('without PUBLIC_URL it refuses before asking Chatwoot anything', async () => {
    double.calls.reset();
    await expect(provisioner({ publicUrl: undefined }).provision({ accountId, name: 'Loja', ref: 'r11' })).rejects.toMatchObject({ code: 'not_configured', message: expect.stringContaining('PUBLIC_URL') as unknown });
    expect(double.calls.count()).toBe(0);
  });

  it('an outage is not a refusal: it reaches the caller as it is, to retry', async () => {
    const down = double.faults.fail({ status: 503, route: INBOXES, forMs: 60_000 });
    const err = await provisioner()
      .provision({ accountId, name: 'Loja', ref: 'r12' })
      .catch((e: unknown) => e);
    down();
    expect(err).toBeInstanceOf(ChatwootLostResponseError);
    expect(double.inboxes(accountId)).toEqual([]);
  });
});
