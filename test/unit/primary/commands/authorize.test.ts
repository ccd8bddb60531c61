/** Who may give a command: WhatsApp numbers through Ponte's own relays, Chatwoot agents on signed deliveries only. */
import { describe, expect, it } from 'vitest';
import { type AuthorizeDeps, authorizeCommand, type CommandEvent } from '../../../../src/primary/commands/authorize.js';
import type { RelayedMessage } from '../../../../src/model/relayed.js';

const ACCOUNT = 3;
const PONTE_INBOX = 12;
const WIDGET_INBOX = 40;
const OPERATOR = '5521998765432';

function relayedRecord(o: Partial<RelayedMessage> = {}): RelayedMessage {
  return { conversationId: 512, messageId: 9001, chatId: `${OPERATOR}@s.whatsapp.net`, chatKind: 'direct', author: [`${OPERATOR}@s.whatsapp.net`], senderDigits: OPERATOR, ...o };
}

function deps(o: Partial<AuthorizeDeps> & { record?: RelayedMessage | undefined } = {}): AuthorizeDeps {
  const record = 'record' in o ? o.record : relayedRecord();
  return {
    commandInboxId: 0,
    authorizedPhones: [OPERATOR],
    authorizedAgentEmails: ['ana@example.com'],
    signed: true,
    isPonteInbox: (_a, inbox) => Promise.resolve(inbox === PONTE_INBOX),
    relayed: (_a, _i, waId) => Promise.resolve(waId === 'ABC' ? record : undefined),
    ...o,
  };
}

/** An incoming message as Chatwoot posts it (the contact's phone field is whatever an agent or visitor typed). */
function incoming(o: Partial<CommandEvent> = {}): CommandEvent {
  return {
    event: 'message_created',
    id: 9001,
    content: 'erga status',
    message_type: 'incoming',
    private: false,
    source_id: 'WAID:ABC',
    account: { id: ACCOUNT },
    inbox: { id: PONTE_INBOX },
    conversation: { id: 512 },
    sender: { phone_number: `+${OPERATOR}` },
    ...o,
  };
}

function agentNote(o: Partial<CommandEvent> = {}): CommandEvent {
  return { ...incoming(), message_type: 'outgoing', private: true, source_id: null, inbox: { id: WIDGET_INBOX }, sender: { type: 'user', email: 'Ana@Example.com' }, ...o };
}

describe('authorizeCommand', () => {
  it('acts on a message Ponte relayed from an authorized number, answering publicly', async () => {
    const d = await authorizeCommand(incoming(), deps());
    expect(d).toEqual({ act: true, ctx: expect.objectContaining({ author: { kind: 'phone', digits: OPERATOR }, replyPrivately: false, conversationId: 512 }) as unknown });
  });

  it('never trusts a phone field in an inbox Ponte does not own (a website widget), whatever the command inbox setting', async () => {
    const widget = incoming({ inbox: { id: WIDGET_INBOX }, source_id: null });
    for (const commandInboxId of [0, WIDGET_INBOX]) {
      const d = await authorizeCommand(widget, deps({ commandInboxId }));
      expect(d).toMatchObject({ act: false, log: 'warn', reason: expect.stringMatching(/not a Ponte inbox/) as unknown });
    }
  });

  it('refuses, in a Ponte inbox, what Ponte did not relay or relayed from someone else', async () => {
    // No WAID record: typed by an agent or made through the API with an authorized phone on the contact.
    expect(await authorizeCommand(incoming({ source_id: null }), deps())).toMatchObject({ act: false, reason: 'not a message Ponte relayed from WhatsApp' });
    // A record for another message or conversation (a copied source id).
    expect(await authorizeCommand(incoming({ id: 1 }), deps())).toMatchObject({ act: false });
    expect(await authorizeCommand(incoming({ conversation: { id: 7 } }), deps())).toMatchObject({ act: false });
    // Relayed from a stranger whose contact an agent gave the operator's phone.
    expect(await authorizeCommand(incoming(), deps({ record: relayedRecord({ senderDigits: '5511977776666' }) }))).toMatchObject({ act: false, reason: expect.stringMatching(/not in WEBHOOK_AUTHORIZED_PHONE_NUMBERS/) as unknown });
    // Relayed from a group (a QR posted there would be seen by every member).
    expect(await authorizeCommand(incoming(), deps({ record: relayedRecord({ chatKind: 'group' }) }))).toMatchObject({ act: false, reason: expect.stringMatching(/group/) as unknown });
  });

  it('narrows WhatsApp commands to the command inbox when one is set', async () => {
    expect(await authorizeCommand(incoming(), deps({ commandInboxId: 99 }))).toMatchObject({ act: false, reason: expect.stringMatching(/not the command inbox/) as unknown });
    expect((await authorizeCommand(incoming(), deps({ commandInboxId: PONTE_INBOX }))).act).toBe(true);
  });

  it('takes private notes and outgoing messages of listed agents, only on signed deliveries, answering privately', async () => {
    expect(await authorizeCommand(agentNote(), deps())).toEqual({ act: true, ctx: expect.objectContaining({ author: { kind: 'agent', email: 'ana@example.com' }, replyPrivately: true, inboxId: WIDGET_INBOX }) as unknown });
    expect((await authorizeCommand(agentNote({ private: false }), deps())).act).toBe(true);
    // The agent's Chatwoot user id comes along when the payload has it (`erga new` makes the author a member).
    expect(await authorizeCommand(agentNote({ sender: { id: 7, type: 'user', email: 'ana@example.com' } }), deps())).toMatchObject({ act: true, ctx: { author: { kind: 'agent', email: 'ana@example.com', userId: 7 } } });
    expect(await authorizeCommand(agentNote(), deps({ signed: false }))).toMatchObject({ act: false, reason: expect.stringMatching(/unsigned/) as unknown });
    expect(await authorizeCommand(agentNote({ sender: { type: 'user', email: 'intruder@example.com' } }), deps())).toMatchObject({ act: false });
    expect(await authorizeCommand(agentNote({ sender: { type: 'agent_bot', email: 'ana@example.com' } }), deps())).toMatchObject({ act: false });
  });

  it("ignores Ponte's own replies and events that are not new messages", async () => {
    expect(await authorizeCommand(agentNote({ source_id: 'PONTE:abc' }), deps())).toMatchObject({ act: false, log: 'debug' });
    expect(await authorizeCommand(incoming({ event: 'message_updated' }), deps())).toMatchObject({ act: false, log: 'debug' });
    expect(await authorizeCommand(incoming({ account: {} }), deps())).toMatchObject({ act: false, log: 'warn' });
  });
});
