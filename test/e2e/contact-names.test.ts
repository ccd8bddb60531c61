/**
 * Contact names end to end: the contacts of a sandbox history set rename
 * the Chatwoot contacts Ponte created (a contact an agent renamed keeps the
 * agent's name; a number without the Brazilian ninth digit is the same
 * person), and `erga contacts` creates the contacts that have no
 * conversation yet, with exact counts in the command's conversation and in
 * `/global-status`; a second run creates nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { api, type Daemon, instanceStatus, startDaemon, until } from '../support/daemon.js';
import { chatwootApi, daemonEnv, scanSandbox, SECRET, startConversation, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';

const SIGNING = 'account-webhook-signing-secret';

interface ContactsStatus {
  state: string;
  contacts: number;
  created: number;
  updated: number;
  skipped: number;
  errors: number;
}

describe('contact names from WhatsApp, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  let prefix: string;
  let accountId: number;
  let site: number;
  let inbox: number;
  let ana: number;
  let key: string;

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    site = double.addInbox({ accountId, name: 'Site' }).id;
    ana = double.addUser({ name: 'Ana', email: 'ana@example.com' }).id;
    sessions = await tempDir('ponte-e2e-names-');
    prefix = randomPrefix();
    const env = daemonEnv(
      { double, sessions, prefix },
      { MAX_WORKERS: '1', HISTORY_IMPORT_DAYS: '7', CHATWOOT_ACCOUNT_WEBHOOK_SECRET: SIGNING, WEBHOOK_AUTHORIZED_AGENT_EMAILS: 'ana@example.com' },
    );
    daemon = await startDaemon(env);
    double.addAccountWebhook({ accountId, url: `${daemon.base}/webhook/comando?token=${SECRET}`, subscriptions: ['message_created'], secret: SIGNING });
    inbox = double.addInbox({ accountId, name: 'WhatsApp Loja' }).id;
    key = `${accountId}-${inbox}`;
    expect((await api(daemon, 'POST', '/admin/instances', { inbox, account: accountId })).status).toBe(201);
    await scanSandbox(daemon, key, '5511955550000');
  }, 90_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  const cw = (method: string, path: string, body?: unknown) => chatwootApi(double, accountId, method, path, body);

  const contactOf = (phone: string) => double.contacts(accountId).find((c) => c.phone_number === `+${phone}`);
  const contactsOf = async (): Promise<ContactsStatus | null> => ((await instanceStatus(daemon, key)) as unknown as { contacts: ContactsStatus | null } | undefined)?.contacts ?? null;
  const inInbox = (contactId: number) => double.contactInboxes(accountId).filter((ci) => ci.contact_id === contactId && ci.inbox_id === inbox);
  const conversationsOf = (contactId: number) => double.conversations(accountId).filter((c) => c.contact_id === contactId);
  const replies = (conversationId: number): string[] =>
    double
      .messages(accountId, conversationId)
      .filter((m) => (m.source_id ?? '').startsWith('PONTE:'))
      .map((m) => m.content ?? '');

  const ANA = '5511987650001';
  const BRUNO = '5511987650002';
  const CARLA = '5511987650003';
  const DAVI = '5511987650004';
  const EVA = '5511987650005';

  it("renames the contacts Ponte created with the history's contact names, keeping an agent's rename", async () => {
    // Three people write first: Ponte creates their contacts (Carla has no push name: her number is her name).
    const live = [
      { from: ANA, pushName: 'Ana P', text: 'oi', id: 'L1' },
      { from: BRUNO, pushName: 'Bruno P', text: 'oi', id: 'L2' },
      { from: CARLA, text: 'oi', id: 'L3' },
    ];
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { messages: live })).status).toBe(201);
    await until('three contacts', () => Promise.resolve([ANA, BRUNO, CARLA].every((p) => contactOf(p) && conversationsOf(contactOf(p)!.id).length === 1)), daemon);
    expect(contactOf(ANA)!.name).toBe('Ana P');
    expect(contactOf(CARLA)!.name).toBe(`+${CARLA}`);
    // An agent renames Bruno in Chatwoot.
    const bruno = contactOf(BRUNO)!.id;
    await cw('PUT', `/contacts/${bruno}`, { name: 'Bruno (cliente VIP)' });
    expect(contactOf(BRUNO)!.name).toBe('Bruno (cliente VIP)');

    const contacts = [
      // Ana by her number without the ninth digit: the same person.
      { jid: '551187650001@s.whatsapp.net', name: 'Ana Silva' },
      { jid: `${BRUNO}@s.whatsapp.net`, name: 'Bruno Souza' },
      { jid: `${CARLA}@s.whatsapp.net`, name: 'Carla Dias' },
      { jid: `${DAVI}@s.whatsapp.net`, name: 'Davi Lima' },
      { jid: `${EVA}@s.whatsapp.net` },
    ];
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/history`, { messages: [], contacts })).status).toBe(201);
    const done = await until('the contacts run done', async () => {
      const s = await contactsOf();
      return s?.state === 'done' ? s : undefined;
    }, daemon);
    // Davi and Eva have no contact yet: they wait for erga contacts.
    expect(done).toEqual({ state: 'done', contacts: 5, created: 0, updated: 2, skipped: 1, errors: 0 });
    expect(contactOf(ANA)!.name).toBe('Ana Silva');
    expect(contactOf(BRUNO)!.name).toBe('Bruno (cliente VIP)');
    expect(contactOf(CARLA)!.name).toBe('Carla Dias');
    expect(contactOf(DAVI)).toBeUndefined();
    expect(double.contacts(accountId).filter((c) => c.phone_number?.startsWith('+55119876500'))).toHaveLength(3);
  }, 60_000);

  it('erga contacts creates the contacts with no conversation, once', async () => {
    const sourceId = 'src-operator';
    const here = await startConversation(double, accountId, { inbox: site, name: 'Operador', phone: '+5521911110000', sourceId });
    const conversationsBefore = double.conversations(accountId).length;

    double.createAgentMessage(accountId, here, { content: `erga contacts ${inbox}`, private: true, userId: ana });
    await until('the first run reported', () => Promise.resolve(replies(here).some((r) => r.includes('done'))), daemon);
    const said = replies(here);
    expect(said[0]).toContain(`Contacts of ${key}: 5 known to WhatsApp`);
    expect(said.at(-1)).toContain(`Contacts of ${key} done: 5 contact(s); created 2, updated 0, skipped 3, errors 0.`);
    expect(double.messages(accountId, here).filter((m) => (m.source_id ?? '').startsWith('PONTE:')).every((m) => m.private)).toBe(true);
    // The status the worker last pushed shows the same counts.
    await until('the counts in the status', async () => (await contactsOf())?.created === 2, daemon);
    expect(await contactsOf()).toEqual({ state: 'done', contacts: 5, created: 2, updated: 0, skipped: 3, errors: 0 });

    // Davi by his saved name, Eva (no name) by her number; each in the instance's inbox, no conversation opened.
    const davi = contactOf(DAVI)!;
    const eva = contactOf(EVA)!;
    expect(davi).toMatchObject({ name: 'Davi Lima', identifier: `${DAVI}@s.whatsapp.net` });
    expect(eva).toMatchObject({ name: `+${EVA}`, identifier: `${EVA}@s.whatsapp.net` });
    for (const id of [davi.id, eva.id]) {
      expect(inInbox(id)).toHaveLength(1);
      expect(conversationsOf(id)).toHaveLength(0);
    }
    expect(double.conversations(accountId).length).toBe(conversationsBefore);
    const count = double.contacts(accountId).length;

    // A second run creates nothing.
    double.createAgentMessage(accountId, here, { content: `erga contacts ${inbox}`, private: true, userId: ana });
    await until('the second run reported', () => Promise.resolve(replies(here).filter((r) => r.includes('done')).length === 2), daemon);
    expect(replies(here).at(-1)).toContain('created 0, updated 0, skipped 5, errors 0.');
    expect(double.contacts(accountId).length).toBe(count);
    await until('the second counts in the status', async () => (await contactsOf())?.skipped === 5, daemon);
    expect(await contactsOf()).toEqual({ state: 'done', contacts: 5, created: 0, updated: 0, skipped: 5, errors: 0 });

    // Davi writes: his message goes to the contact made for him, in its contact inbox.
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: DAVI, pushName: 'Davi', text: 'oi', id: 'L4' })).status).toBe(201);
    await until('a conversation for Davi', () => Promise.resolve(conversationsOf(davi.id).length === 1), daemon);
    expect(double.contacts(accountId).length).toBe(count);
    expect(inInbox(davi.id)).toHaveLength(1);
    expect(contactOf(DAVI)!.name).toBe('Davi Lima');
  }, 60_000);
});
