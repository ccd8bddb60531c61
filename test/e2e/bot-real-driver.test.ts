/**
 * A Chatwoot bot's question as a WhatsApp poll on the production driver: an
 * unmodified Baileys rc14 socket linked to the loopback WhatsApp server
 * sends the poll (`BOT_OPTIONS_STYLE=poll`), the customer's phone decrypts
 * it, and the vote it sends back, encrypted with the poll's secret as
 * WhatsApp does, reaches the Chatwoot double as the option's title replying
 * to the bot's message.
 */
import { createHash, randomBytes } from 'node:crypto';
import { aesEncryptGCM, hmacSign, proto } from '@whiskeysockets/baileys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble } from '../support/chatwoot-double/index.js';
import { api, type Daemon, instanceStatus, until } from '../support/daemon.js';
import { SECRET, tearDown, tempDir } from '../support/e2e.js';
import { linkByQr, realDriverEnv, startRealDriverDaemon } from '../support/real-whatsapp.js';
import { randomPrefix } from '../support/redis.js';
import { quietLibsignal, startWhatsAppServer, type WhatsAppServer } from '../support/whatsapp-server/index.js';

const PHONE = '5511933335555';

/** A vote as the voter's phone encrypts it (the inverse of Baileys' `decryptPollVote`). */
function encryptVote(option: string, secret: Uint8Array, pollId: string, creatorJid: string, voterJid: string): { encPayload: Buffer; encIv: Buffer } {
  const sign = Buffer.concat([Buffer.from(pollId), Buffer.from(creatorJid), Buffer.from(voterJid), Buffer.from('Poll Vote'), Buffer.from([1])]);
  const encKey = hmacSign(sign, hmacSign(secret, new Uint8Array(32), 'sha256'), 'sha256');
  const encIv = randomBytes(12);
  const plain = proto.Message.PollVoteMessage.encode({ selectedOptions: [createHash('sha256').update(option).digest()] }).finish();
  return { encPayload: aesEncryptGCM(plain, encKey, encIv, Buffer.from(`${pollId}\u0000${voterJid}`)), encIv };
}

describe('a bot question as a poll on the Baileys driver, against a loopback WhatsApp', () => {
  let server: WhatsAppServer;
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  const prefix = randomPrefix();
  let loudLibsignal: (() => void) | undefined;

  beforeAll(async () => {
    loudLibsignal = quietLibsignal();
    server = await startWhatsAppServer();
    double = await startChatwootDouble();
    sessions = await tempDir('ponte-e2e-bots-real-');
    const env = realDriverEnv({ double, sessions, prefix }, { BOT_OPTIONS_STYLE: 'poll', SHUTDOWN_TIMEOUT_MS: '15000' });
    daemon = await startRealDriverDaemon(server, env);
  }, 90_000);

  afterAll(async () => {
    await tearDown({ daemons: [daemon], close: [server, double], prefix, dir: sessions });
    loudLibsignal?.();
  }, 90_000);

  it('sends the poll the phone decrypts, with its secret; the vote comes back as the option, replying to the bot', async () => {
    const accountId = double.addAccount().id;
    const inbox = double.addInbox({ accountId, name: 'WhatsApp Bot', secret: 'bot-real-inbox-secret' }).id;
    const key = `${accountId}-${inbox}`;
    double.setInboxWebhook(inbox, `${daemon.base}/webhook/chatwoot/${key}?token=${SECRET}`);
    expect((await api(daemon, 'POST', '/admin/instances', { inbox, account: accountId })).status).toBe(201);
    await linkByQr(daemon, server, key, PHONE);
    await until('the instance open', async () => (await instanceStatus(daemon, key))?.state === 'open', daemon);

    const account = server.account(PHONE)!;
    const maria = server.addPeer({ phone: '5511987653333', pushName: 'Maria' });
    const all = () => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id));
    const relayed = (waId: string) => until(`WhatsApp message ${waId} in Chatwoot`, () => Promise.resolve(all().find((m) => m.source_id === `WAID:${waId}`)), daemon);
    const conv = (await relayed((await maria.sendText(account, 'Quero pagar meu pedido')).id)).conversation_id;

    const res = await fetch(`${double.url}/api/v1/accounts/${accountId}/conversations/${conv}/messages`, {
      method: 'POST',
      headers: { api_access_token: double.token, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'Como prefere pagar?', message_type: 'outgoing', content_type: 'input_select', content_attributes: { items: [{ title: 'Pix', value: 'pix' }, { title: 'Boleto', value: 'boleto' }] } }),
    });
    const question = ((await res.json()) as { id: number }).id;

    const got = await until('the poll on the phone', () => Promise.resolve(maria.messages.items.find((m) => m.message.pollCreationMessageV3)), daemon);
    expect(got.message.pollCreationMessageV3).toMatchObject({ name: 'Como prefere pagar?', selectableOptionsCount: 1, options: [{ optionName: 'Pix' }, { optionName: 'Boleto' }] });
    const secret = got.message.messageContextInfo?.messageSecret;
    expect(secret?.length).toBe(32);

    // WhatsApp signs a vote with the creator's LID and the voter's number (baileys.md §2.6).
    const vote = encryptVote('Boleto', secret!, got.id, account.lidJid, maria.pnJid);
    const sent = await maria.sendMessage(account, { pollUpdateMessage: { pollCreationMessageKey: { remoteJid: account.lidJid, fromMe: false, id: got.id }, vote, senderTimestampMs: Date.now() } });
    const answer = await relayed(sent.id);
    expect(answer).toMatchObject({ conversation_id: conv, message_type: 'incoming', content: 'Boleto' });
    expect(answer.content_attributes.in_reply_to).toBe(question);

    expect(double.violations).toEqual([]);
    expect(server.errors).toEqual([]);
  }, 120_000);
});
