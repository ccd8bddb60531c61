/**
 * Every kind of WhatsApp message through the daemon (sandbox driver) into
 * the Chatwoot double: what each becomes, and a mixed run under faults with
 * nothing lost or doubled.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, type Daemon, startDaemon, until } from '../support/daemon.js';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { daemonEnv, linkSandbox, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';

const JPEG = Buffer.from('ffd8ffe000104a46494600010100000100010000ffd9', 'hex');
const OGG = Buffer.from('4f6767530002000000000000000000000000', 'hex');
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('message types, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let accountId: number;
  let key: string;

  beforeAll(async () => {
    double = await startChatwootDouble({ webhooksEnabled: false, seed: 11 });
    accountId = double.addAccount().id;
    const inboxId = double.addInbox({ accountId, name: 'WhatsApp Vendas' }).id;
    sessions = await tempDir('ponte-e2e-types-');
    daemon = await startDaemon(
      daemonEnv(
        { double, sessions, prefix },
        { CHATWOOT_API_TIMEOUT: '1000', MAX_WORKERS: '1', OUTAGE_PROBE_MIN_DELAY_MS: '50', OUTAGE_PROBE_MAX_DELAY_MS: '500', BULLMQ_JOB_BACKOFF_DELAY: '50', SERVER_LOG_LEVEL: 'error' },
      ),
    );
    key = await linkSandbox(daemon, { account: accountId, inbox: inboxId, phone: '5511933332222' });
  }, 60_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  const all = (): CwMessageRecord[] => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id));
  const byWaId = (id: string) => all().find((m) => m.source_id === `WAID:${id}`);
  async function send(body: Record<string, unknown>): Promise<CwMessageRecord> {
    const r = await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, body);
    expect(r.status).toBe(201);
    const id = String(r.json.id);
    return until(`message ${id} in Chatwoot`, () => Promise.resolve(byWaId(id)), daemon);
  }

  it('renders each kind: media as attachments, location, contact card, poll and vote, reaction, edit, revoke, groups, calls', async () => {
    const from = '5511955550001';
    const image = await send({ from, pushName: 'Ana', type: 'image', media: JPEG.toString('base64'), mimetype: 'image/jpeg', caption: 'foto do defeito', id: 'IMG1' });
    expect(image.content).toBe('foto do defeito');
    expect(image.attachments.map((a) => [a.file_type, a.content_type, sha(a.data)])).toEqual([['image', 'image/jpeg', sha(JPEG)]]);

    const voice = await send({ from, type: 'ptt', media: OGG.toString('base64'), id: 'PTT1' });
    expect(voice.attachments.map((a) => [a.file_type, sha(a.data)])).toEqual([['audio', sha(OGG)]]);

    const doc = await send({ from, type: 'document', media: PDF.toString('base64'), mimetype: 'application/pdf', fileName: 'nota-fiscal.pdf', caption: 'segue a nota' });
    expect(doc.content).toBe('segue a nota');
    expect(doc.attachments.map((a) => [a.file_type, a.file_name, sha(a.data)])).toEqual([['file', 'nota-fiscal.pdf', sha(PDF)]]);

    const location = await send({ from, type: 'location', latitude: -22.9519, longitude: -43.2105, text: 'Cristo Redentor' });
    expect(location.content).toContain('https://maps.google.com/?q=-22.9519,-43.2105');
    expect(location.content).toContain('Cristo Redentor');

    const vcard = 'BEGIN:VCARD\nVERSION:3.0\nFN:Carol Example\nTEL;type=CELL;waid=5511955554444:+55 11 95555-4444\nEND:VCARD';
    const card = await send({ from, type: 'contact', vcard });
    expect(card.content).toBe('👤 Carol Example: +5511955554444');
    expect(card.attachments.map((a) => [a.file_name, a.data.toString()])).toEqual([['Carol Example.vcf', `${vcard}\n`]]);

    const poll = await send({ from, type: 'poll', text: 'Qual sabor?', options: ['Pizza', 'Sushi'], id: 'POLL1' });
    expect(poll.content).toBe('📊 Qual sabor?\n1. Pizza\n2. Sushi');
    // A vote is encrypted for the poll's creator; Ponte decrypts it and names the choice.
    const vote = await send({ from, type: 'vote', targetId: 'POLL1', options: ['Sushi'] });
    expect(vote.content).toBe('🗳️ Voted: Sushi');
    expect(vote.content_attributes.in_reply_to).toBe(poll.id);

    const reaction = await send({ from, type: 'reaction', targetId: 'IMG1', emoji: '👍' });
    expect(reaction.content).toBe('Reacted 👍');
    expect(reaction.content_attributes.in_reply_to).toBe(image.id);

    const edit = await send({ from, type: 'edit', targetId: 'IMG1', text: 'foto do defeito (lado esquerdo)' });
    expect(edit.content).toBe('✏️ Edited: foto do defeito (lado esquerdo)');
    expect(edit.content_attributes.in_reply_to).toBe(image.id);

    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from, type: 'revoke', targetId: 'PTT1' })).status).toBe(201);
    await until('the voice note deleted in Chatwoot', () => Promise.resolve(byWaId('PTT1')?.content_attributes.deleted === true));

    const group = await send({ from: '5511955550002', pushName: 'Bia', group: { jid: '120363000000000001@g.us', subject: 'Clientes VIP' }, text: 'bom dia, grupo' });
    expect(group.content).toBe('*Bia* (+5511955550002):\nbom dia, grupo');
    const group2 = await send({ from: '5511955550003', pushName: 'Caio', group: { jid: '120363000000000001@g.us' }, text: 'oi' });
    expect(group2.content).toBe('*Caio* (+5511955550003):\noi');
    const groupConvs = double.conversations(accountId).filter((c) => double.messages(accountId, c.id).some((m) => m.id === group.id || m.id === group2.id));
    expect(groupConvs).toHaveLength(1);
    const groupContact = () => double.contacts(accountId).find((c) => c.id === groupConvs[0]!.contact_id);
    expect(groupContact()?.name).toBe('Clientes VIP');
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/groups`, { jid: '120363000000000001@g.us', subject: 'Clientes VIP 2026' })).status).toBe(200);
    await until('the group contact renamed', () => Promise.resolve(groupContact()?.name === 'Clientes VIP 2026'));

    // A missed call leaves a line in the caller's conversation.
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/calls`, { from, id: 'CALL1', status: 'timeout' })).status).toBe(201);
    const call = await until('the missed call', () => Promise.resolve(byWaId('CALLCALL1')));
    expect(call.content).toBe('📞 Missed voice call');
    expect(double.conversations(accountId).find((c) => c.id === call.conversation_id)).toBeDefined();
    expect(call.conversation_id).toBe(image.conversation_id);
    expect(double.violations).toEqual([]);
  }, 60_000);

  it('acts on a message only from its own chat and sender: revokes, edits and reactions naming others are ignored', async () => {
    const victim = await send({ from: '5511955560001', pushName: 'Vera', text: 'meu pedido é o 4411', id: 'VICTIM1' });
    const attacker = '5511955560002';
    // Message ids are not secrets (every group member sees them all): another chat names the victim's message.
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: attacker, type: 'revoke', targetId: 'VICTIM1' })).status).toBe(201);
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: attacker, type: 'edit', targetId: 'VICTIM1', text: 'cancelem meu pedido', id: 'FORGEDEDIT' })).status).toBe(201);
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: attacker, type: 'reaction', targetId: 'VICTIM1', emoji: '💩', id: 'FORGEDREACT' })).status).toBe(201);
    // In a group, one member revokes or edits another's message.
    const jid = '120363000000000077@g.us';
    const own = await send({ from: '5511955560003', group: { jid, subject: 'Loja' }, text: 'texto original', id: 'GROUPMSG1' });
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: attacker, group: { jid }, type: 'revoke', targetId: 'GROUPMSG1' })).status).toBe(201);
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: attacker, group: { jid }, type: 'edit', targetId: 'GROUPMSG1', text: 'trocado', id: 'GROUPEDIT' })).status).toBe(201);
    // A reaction from another member of the same group is normal.
    const reaction = await send({ from: attacker, group: { jid }, type: 'reaction', targetId: 'GROUPMSG1', emoji: '❤️' });
    expect(reaction.content_attributes.in_reply_to).toBe(own.id);
    // Markers in the attacker's chat: once they arrive, everything before them in those chats was handled.
    await send({ from: attacker, text: 'marcador', id: 'MARK1' });
    await send({ from: attacker, group: { jid }, text: 'marcador', id: 'MARK2' });
    expect(byWaId('VICTIM1')).toMatchObject({ id: victim.id, content: 'meu pedido é o 4411' });
    expect(byWaId('VICTIM1')?.content_attributes.deleted).toBeUndefined();
    expect(byWaId('GROUPMSG1')?.content_attributes.deleted).toBeUndefined();
    expect([byWaId('FORGEDEDIT'), byWaId('FORGEDREACT'), byWaId('GROUPEDIT')]).toEqual([undefined, undefined, undefined]);
    // The author may still revoke their own message.
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from: '5511955560003', group: { jid }, type: 'revoke', targetId: 'GROUPMSG1' })).status).toBe(201);
    await until('the group message deleted by its author', () => Promise.resolve(byWaId('GROUPMSG1')?.content_attributes.deleted === true));
  }, 60_000);

  it('a mixed run under lost responses and 5xx: nothing lost, nothing doubled, each chat in order', async () => {
    double.faults.loseResponses({ ratio: 0.1, mode: 'status', status: 500 });
    double.faults.fail({ status: 502, ratio: 0.15 });
    const kinds = [
      { type: 'text', text: 'olá' },
      { type: 'image', media: JPEG.toString('base64'), mimetype: 'image/jpeg', caption: 'foto' },
      { type: 'location', latitude: 1.5, longitude: 2.5 },
      { type: 'document', media: PDF.toString('base64'), mimetype: 'application/pdf', fileName: 'x.pdf' },
      { type: 'poll', text: 'Sim?', options: ['Sim', 'Não'] },
    ];
    const sent = new Map<string, string[]>();
    for (let i = 0; i < 60; i++) {
      const from = `55119666000${String(i % 4).padStart(2, '0')}`;
      const id = `MIX${String(i).padStart(3, '0')}`;
      expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from, id, ...kinds[i % kinds.length] })).status).toBe(201);
      sent.set(from, [...(sent.get(from) ?? []), `WAID:${id}`]);
    }
    await until('60 mixed messages relayed', () => Promise.resolve(all().filter((m) => m.source_id?.startsWith('WAID:MIX')).length >= 60), daemon);
    double.faults.clear();
    const ids = all().filter((m) => m.source_id?.startsWith('WAID:MIX')).map((m) => m.source_id);
    expect(ids).toHaveLength(60);
    expect(new Set(ids).size).toBe(60);
    for (const [, expected] of sent) {
      const conv = double.conversations(accountId).find((c) => double.messages(accountId, c.id).some((m) => m.source_id === expected[0]))!;
      expect(double.messages(accountId, conv.id).map((m) => m.source_id).filter((s) => s?.startsWith('WAID:MIX'))).toEqual(expected);
    }
    expect(double.faults.injected().lost).toBeGreaterThan(0);
  }, 90_000);

  it('a message Chatwoot refuses for good is parked and counted, its chat goes on, and a replay delivers it once', async () => {
    const parked = async () => ((await api(daemon, 'GET', '/global-status')).json.totals as { parked: number }).parked;
    const before = await parked();
    const from = '5511955550077';
    const clear = double.faults.fail({ status: 403, route: 'POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages' });
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { from, text: 'pedido 123', id: 'PARK1' })).status).toBe(201);
    await until('the refused message parked', async () => (await parked()) === before + 1, daemon);
    clear();
    // The chat is not blocked behind it.
    await send({ from, text: 'alguém aí?', id: 'AFTERPARK1' });
    expect(byWaId('PARK1')).toBeUndefined();

    expect(await api(daemon, 'POST', `/admin/instances/${key}/replay`)).toEqual({ status: 200, json: { replayed: 1 } });
    await until('the replayed message in Chatwoot', () => Promise.resolve(byWaId('PARK1')), daemon);
    expect(all().filter((m) => m.source_id === 'WAID:PARK1')).toHaveLength(1);
    // Replayed messages leave the parked list: a second replay has nothing to send.
    expect(await api(daemon, 'POST', `/admin/instances/${key}/replay`)).toEqual({ status: 200, json: { replayed: 0 } });
    expect((await api(daemon, 'POST', '/admin/instances/9-9/replay')).status).toBe(404);
  }, 60_000);
});
