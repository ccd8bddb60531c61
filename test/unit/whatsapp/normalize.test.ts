import { proto } from '@whiskeysockets/baileys';
import { describe, expect, it } from 'vitest';
import { normalizeMessage } from '../../../src/whatsapp/normalize.js';
import { buildMessage, buildTextMessage } from '../../../src/sandbox/message-builder.js';

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
      remoteJid: `${LID}@lid`,
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
    ['protocol traffic other than edits and revokes', buildMessage({ fromPn: PN }, { protocolMessage: { type: proto.Message.ProtocolMessage.Type.EPHEMERAL_SETTING, key: { id: 'X' } } }), 'empty protocolMessage'],
    ['poll votes without an encrypted vote', buildMessage({ fromPn: PN }, { pollUpdateMessage: { pollCreationMessageKey: { id: 'P' } } }), 'empty pollUpdateMessage'],
  ])('ignores %s', (_what, raw, reason) => {
    expect(normalizeMessage(raw, 'notify')).toEqual({ ok: false, reason });
  });

  it('ignores system stubs without content', () => {
    const raw = buildTextMessage({ fromPn: PN, text: 'x' });
    raw.message = null;
    raw.messageStubType = proto.WebMessageInfo.StubType.E2E_ENCRYPTED;
    expect(normalizeMessage(raw, 'notify')).toEqual({ ok: false, reason: 'system stub' });
  });

  it.each([
    ['a revoke: delete its target', { protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE, key: { id: 'T1' } } }, { kind: 'revoke', targetWaId: 'T1' }],
    ['an edit: the new text for its target', { editedMessage: { message: { protocolMessage: { type: proto.Message.ProtocolMessage.Type.MESSAGE_EDIT, key: { id: 'T2' }, editedMessage: { conversation: 'novo texto' } } } } }, { kind: 'edit', targetWaId: 'T2', text: 'novo texto' }],
    ['a reaction', { reactionMessage: { key: { id: 'T3' }, text: '👍' } }, { kind: 'reaction', targetWaId: 'T3', emoji: '👍' }],
    ['a removed reaction', { reactionMessage: { key: { id: 'T3' }, text: '' } }, { kind: 'reaction', targetWaId: 'T3', emoji: null }],
    ['a location', { locationMessage: { degreesLatitude: -22.9519, degreesLongitude: -43.2105, name: 'Cristo Redentor', address: 'Rio de Janeiro' } }, { kind: 'location', latitude: -22.9519, longitude: -43.2105, name: 'Cristo Redentor', address: 'Rio de Janeiro', live: false }],
    ['a live location', { liveLocationMessage: { degreesLatitude: 1, degreesLongitude: 2 } }, { kind: 'location', latitude: 1, longitude: 2, live: true }],
    ['a poll', { pollCreationMessageV3: { name: 'Sabor?', options: [{ optionName: 'Pizza' }, { optionName: 'Sushi' }], selectableOptionsCount: 1 } }, { kind: 'poll', question: 'Sabor?', options: ['Pizza', 'Sushi'], creatorJids: [`${PN}@s.whatsapp.net`] }],
    ['a button reply', { buttonsResponseMessage: { selectedButtonId: 'b1', selectedDisplayText: 'Sim, quero' } }, { kind: 'text', text: 'Sim, quero' }],
    ['a list reply', { listResponseMessage: { title: 'Plano anual', singleSelectReply: { selectedRowId: 'r2' } } }, { kind: 'text', text: 'Plano anual' }],
    ['a link with its preview title', { extendedTextMessage: { text: 'veja https://loja.example.com', title: 'Loja Exemplo' } }, { kind: 'text', text: 'veja https://loja.example.com', linkTitle: 'Loja Exemplo' }],
    ['an unknown kind: a placeholder naming it', { groupInviteMessage: { groupJid: '1@g.us', caption: 'entra aí' } }, { kind: 'unsupported', waType: 'groupInviteMessage' }],
  ])('%s', (_what, message, content) => {
    expect(ok(normalizeMessage(buildMessage({ fromPn: PN }, message as proto.IMessage), 'notify')).content).toEqual(content);
  });

  it('a contact card keeps names, numbers and the vCard', () => {
    const vcard = 'BEGIN:VCARD\nVERSION:3.0\nFN:Carol Example\nTEL;type=CELL;waid=5511955554444:+55 11 95555-4444\nEND:VCARD';
    const m = ok(normalizeMessage(buildMessage({ fromPn: PN }, { contactMessage: { displayName: 'Carol Example', vcard } }), 'notify'));
    expect(m.content).toEqual({ kind: 'contacts', contacts: [{ name: 'Carol Example', phones: ['+5511955554444'], vcard }] });
  });

  it('media inside ephemeral and view-once wrappers: the kind, caption, file name and a download reference, never the bytes', () => {
    const image = ok(normalizeMessage(buildMessage({ fromPn: PN }, { ephemeralMessage: { message: { imageMessage: { caption: 'foto', mimetype: 'image/jpeg', fileLength: 2048, mediaKey: Buffer.alloc(32, 7), directPath: '/m/1' } } } }), 'notify'));
    expect(image.content).toMatchObject({ kind: 'media', media: 'image', mimetype: 'image/jpeg', caption: 'foto', sizeBytes: 2048 });
    const ref = (image.content as { ref: string }).ref;
    expect(ref).toContain('mediaKey');
    const once = ok(normalizeMessage(buildMessage({ fromPn: PN }, { viewOnceMessageV2: { message: { videoMessage: { mimetype: 'video/mp4' } } } }), 'notify'));
    expect(once.content).toMatchObject({ kind: 'media', media: 'video', viewOnce: true });
    const voice = ok(normalizeMessage(buildMessage({ fromPn: PN }, { audioMessage: { mimetype: 'audio/ogg; codecs=opus', ptt: true } }), 'notify'));
    expect(voice.content).toMatchObject({ kind: 'media', media: 'voice' });
    const doc = ok(normalizeMessage(buildMessage({ fromPn: PN }, { documentWithCaptionMessage: { message: { documentMessage: { mimetype: 'application/pdf', fileName: 'boleto.pdf', caption: 'segue' } } } }), 'notify'));
    expect(doc.content).toMatchObject({ kind: 'media', media: 'document', fileName: 'boleto.pdf', caption: 'segue' });
  });
});
