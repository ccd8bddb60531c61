/**
 * The history import on the production driver: an unmodified Baileys rc14
 * socket linked by QR to the loopback WhatsApp server, whose phone sends
 * its history after the first login as WhatsApp does (encrypted history
 * notifications, chats keyed by LID with the number beside them). The
 * daemon imports the messages into the Chatwoot double: under the person's
 * number (rc14 stored the LID ⇄ number pairs), in order, with their times.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { api, type Daemon, instanceStatus, until } from '../support/daemon.js';
import { tearDown, tempDir } from '../support/e2e.js';
import { currentQr, realDriverEnv, startRealDriverDaemon } from '../support/real-whatsapp.js';
import { randomPrefix } from '../support/redis.js';
import { quietLibsignal, startWhatsAppServer, type WhatsAppServer } from '../support/whatsapp-server/index.js';

const PHONE = '5511933334444';

describe('the history import on the Baileys driver, against a loopback WhatsApp', () => {
  let server: WhatsAppServer;
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let loudLibsignal: (() => void) | undefined;

  beforeAll(async () => {
    loudLibsignal = quietLibsignal();
    server = await startWhatsAppServer();
    double = await startChatwootDouble({ webhooksEnabled: false });
    sessions = await tempDir('ponte-e2e-hist-real-');
    const env = realDriverEnv({ double, sessions, prefix }, { TZ: 'UTC', HISTORY_IMPORT_DAYS: '7', SHUTDOWN_TIMEOUT_MS: '15000' });
    daemon = await startRealDriverDaemon(server, env);
  }, 90_000);

  afterAll(async () => {
    await tearDown({ daemons: [daemon], close: [server, double], prefix, dir: sessions });
    loudLibsignal?.();
  }, 90_000);

  it("imports the phone's history sent after the link into each person's conversation, by number, oldest first", async () => {
    const accountId = double.addAccount().id;
    const inbox = double.addInbox({ accountId, name: 'WhatsApp' }).id;
    const key = `${accountId}-${inbox}`;
    const maria = server.addPeer({ phone: '5511987651111', pushName: 'Maria' });
    const joao = server.addPeer({ phone: '5511987652222', pushName: 'João' });
    const now = Math.floor(Date.now() / 1000);
    const at = (daysAgo: number, i: number) => now - daysAgo * 86_400 + i * 60;
    const messages = [
      { key: { remoteJid: maria.lidJid, fromMe: false, id: 'HM1' }, messageTimestamp: at(3, 0), pushName: 'Maria', message: { conversation: 'o pedido saiu?' } },
      { key: { remoteJid: maria.lidJid, fromMe: true, id: 'HM2' }, messageTimestamp: at(3, 1), message: { conversation: 'sai amanhã' } },
      { key: { remoteJid: maria.lidJid, fromMe: false, id: 'HM3' }, messageTimestamp: at(2, 0), pushName: 'Maria', message: { conversation: 'obrigada' } },
      { key: { remoteJid: joao.lidJid, fromMe: false, id: 'HJ1' }, messageTimestamp: at(1, 0), pushName: 'João', message: { conversation: 'bom dia' } },
      // Past HISTORY_IMPORT_DAYS.
      { key: { remoteJid: joao.lidJid, fromMe: false, id: 'HJ0' }, messageTimestamp: at(20, 0), pushName: 'João', message: { conversation: 'antiga' } },
    ];
    expect((await api(daemon, 'POST', '/admin/instances', { inbox, account: accountId })).status).toBe(201);
    await server.scanQr(await currentQr(daemon, key), { phone: PHONE }, { history: { contacts: [maria, joao], messages } });

    const done = await until('the import done', async () => {
      const s = ((await instanceStatus(daemon, key)) as unknown as { import: { state: string } | null } | undefined)?.import;
      return s?.state === 'done' ? s : undefined;
    }, daemon, 90_000);
    expect(done).toEqual({ state: 'done', chats: 2, messages: 4, created: 4, skipped: 0, errors: 0 });

    const conversationOf = (phone: string) => {
      const contact = double.contacts(accountId).find((c) => c.phone_number === `+${phone}`);
      expect(contact, phone).toBeDefined();
      const convs = double.conversations(accountId).filter((c) => c.contact_id === contact!.id);
      expect(convs).toHaveLength(1);
      return double.messages(accountId, convs[0]!.id);
    };
    const stamp = (ts: number) => `[${new Date(ts * 1000).toISOString().slice(0, 16).replace('T', ' ')}]`;
    expect(conversationOf(maria.phone).map((m) => [m.source_id, m.message_type, m.content])).toEqual([
      ['WAID:HM1', 'incoming', `${stamp(at(3, 0))} o pedido saiu?`],
      ['WAID:HM2', 'outgoing', `${stamp(at(3, 1))} sai amanhã`],
      ['WAID:HM3', 'incoming', `${stamp(at(2, 0))} obrigada`],
    ]);
    expect(conversationOf(joao.phone).map((m) => m.source_id)).toEqual(['WAID:HJ1']);
    expect(double.violations).toEqual([]);
    expect(server.errors).toEqual([]);
  }, 120_000);
});
