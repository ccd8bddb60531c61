import { proto } from '@whiskeysockets/baileys';
import { describe, expect, it } from 'vitest';
import { normalizeMessage } from '../../../src/whatsapp/normalize.js';
import { buildMessage, buildTextMessage } from '../../../src/whatsapp/sandbox/message-builder.js';

const PN = '5511987654321';
const LID = '218512345678901';

function ok(result: ReturnType<typeof normalizeMessage>) {
  if (!result.ok) throw new Error(`not relayed: ${result.reason}`);
  return result.message;
}

describe('normalizeMessage', () => {
  it('a LID-addressed text keeps both addresses and the push name', () => {
    const m = ok(normalizeMessage(buildTextMessage({ fromLid: LID, fromPn: PN, pushName: 'Maria', text: 'oi', id: 'A1', timestampS: 1_767_225_600 }), 'notify'));
    expect(m).toEqual({
      waId: 'A1',
      chatId: `${PN}@s.whatsapp.net`,
      chatKind: 'direct',
      peer: { pnJid: `${PN}@s.whatsapp.net`, lidJid: `${LID}@lid`, pushName: 'Maria' },
      fromMe: false,
      timestampS: 1_767_225_600,
      upsertType: 'notify',
      content: { kind: 'text', text: 'oi' },
    });
  });

  it('a LID with no phone number known is keyed by the LID', () => {
    const m = ok(normalizeMessage(buildTextMessage({ fromLid: LID, text: 'oi' }), 'append'));
    expect(m.chatId).toBe(`${LID}@lid`);
    expect(m.peer).toEqual({ lidJid: `${LID}@lid` });
    expect(m.upsertType).toBe('append');
  });

  it('a phone-addressed message with a LID alternate', () => {
    const m = ok(normalizeMessage(buildTextMessage({ fromPn: PN, fromLid: LID, addressing: 'pn', text: 'oi' }), 'notify'));
    expect(m.peer).toEqual({ pnJid: `${PN}@s.whatsapp.net`, lidJid: `${LID}@lid` });
  });

  it('drops device suffixes', () => {
    const raw = buildTextMessage({ fromPn: PN, text: 'oi' });
    raw.key.remoteJid = `${PN}:12@s.whatsapp.net`;
    expect(ok(normalizeMessage(raw, 'notify')).chatId).toBe(`${PN}@s.whatsapp.net`);
  });

  it('a message from the owner phone: outgoing side, peer is the chat, no push name', () => {
    const m = ok(normalizeMessage(buildTextMessage({ fromPn: PN, fromMe: true, pushName: 'Loja', text: 'olá' }), 'notify'));
    expect(m.fromMe).toBe(true);
    expect(m.peer).toEqual({ pnJid: `${PN}@s.whatsapp.net` });
  });

  it('a group message names its participant; replies carry the quoted id', () => {
    const m = ok(normalizeMessage(buildTextMessage({ group: { jid: '120363000000000001@g.us' }, fromLid: LID, fromPn: PN, pushName: 'Bia', text: 'sim', quotedId: 'Q1' }), 'notify'));
    expect(m.chatKind).toBe('group');
    expect(m.chatId).toBe('120363000000000001@g.us');
    expect(m.participant).toEqual({ pnJid: `${PN}@s.whatsapp.net`, lidJid: `${LID}@lid`, pushName: 'Bia' });
    expect(m.quotedWaId).toBe('Q1');
    expect(m.content).toEqual({ kind: 'text', text: 'sim' });
  });

  it.each([
    ['status updates', buildTextMessage({ group: { jid: 'status@broadcast' }, fromPn: PN, text: 'story' }), 'status or broadcast list'],
    ['newsletters', buildTextMessage({ group: { jid: '120363000000000009@newsletter' }, fromPn: PN, text: 'news' }), 'newsletter'],
    ['revokes (they come again as messages.update)', buildMessage({ fromPn: PN }, { protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE, key: { id: 'X' } } }), 'protocolMessage'],
    ['reactions (they come again as messages.reaction)', buildMessage({ fromPn: PN }, { reactionMessage: { key: { id: 'X' }, text: '👍' } }), 'reactionMessage'],
  ])('ignores %s', (_what, raw, reason) => {
    expect(normalizeMessage(raw, 'notify')).toEqual({ ok: false, reason });
  });

  it('ignores system stubs without content', () => {
    const raw = buildTextMessage({ fromPn: PN, text: 'x' });
    raw.message = null;
    raw.messageStubType = proto.WebMessageInfo.StubType.E2E_ENCRYPTED;
    expect(normalizeMessage(raw, 'notify')).toEqual({ ok: false, reason: 'system stub' });
  });

  it('other kinds are marked unsupported with their caption, until they get their own handling', () => {
    const m = ok(normalizeMessage(buildMessage({ fromPn: PN }, { ephemeralMessage: { message: { imageMessage: { caption: 'foto', mimetype: 'image/jpeg' } } } }), 'notify'));
    expect(m.content).toEqual({ kind: 'unsupported', waType: 'imageMessage', text: 'foto' });
  });
});
