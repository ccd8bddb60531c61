/** Recognising WhatsApp's passkey demand at linking in the stanzas a linking socket receives. */
import { describe, expect, it } from 'vitest';
import { PasskeyRequiredError, passkeyStepOf } from '../../../src/whatsapp/passkey.js';
import { decideOnClose } from '../../../src/whatsapp/disconnect-policy.js';

const n = (tag: string, attrs: Record<string, string> = {}, content?: unknown) => ({ tag, attrs, content });

describe('passkeyStepOf', () => {
  it.each([
    ['a notification typed passkey_prologue_request', n('notification', { type: 'passkey_prologue_request', from: 's.whatsapp.net', id: '1' }, [n('passkey_request_options', {}, Buffer.from('{}'))]), 'passkey_prologue_request'],
    ['a notification typed crsc_continuation', n('notification', { type: 'crsc_continuation', id: '2' }, [n('primary_ephemeral_identity')]), 'crsc_continuation'],
    ['an iq carrying a passkey_prologue_request child', n('iq', { type: 'set', id: '3', xmlns: 'md' }, [n('passkey_prologue_request')]), 'passkey_prologue_request'],
    ['an iq carrying crsc_continuation after another child', n('iq', { type: 'set', id: '4' }, [n('ref'), n('crsc_continuation')]), 'crsc_continuation'],
    ['an ib typed crsc_continuation', n('ib', { type: 'crsc_continuation' }), 'crsc_continuation'],
  ])('%s', (_, stanza, step) => {
    expect(passkeyStepOf(stanza)).toBe(step);
  });

  it.each([
    ['companion_reg_refresh', n('notification', { type: 'companion_reg_refresh' }, [n('companion_reg_refresh')])],
    ['pair-device', n('iq', { type: 'set' }, [n('pair-device', {}, [n('ref', {}, Buffer.from('r'))])])],
    ['an iq result without children', n('iq', { type: 'result', id: '5' })],
    ['binary content', n('notification', { type: 'encrypt' }, Buffer.from('passkey_prologue_request'))],
    ['another tag named like a step', n('message', { type: 'passkey_prologue_request' })],
    ['a grandchild named like a step', n('notification', { type: 'devices' }, [n('wrapper', {}, [n('passkey_prologue_request')])])],
  ])('not a passkey step: %s', (_, stanza) => {
    expect(passkeyStepOf(stanza)).toBeUndefined();
  });
});

describe('the close a passkey demand causes', () => {
  it('stops as passkey_required, never a reconnect', () => {
    expect(decideOnClose(new PasskeyRequiredError('passkey_prologue_request'))).toEqual({
      action: 'passkey_required',
      code: 0,
      step: 'passkey_prologue_request',
      reason: 'passkeyRequired: WhatsApp asked for a passkey before linking (passkey_prologue_request)',
    });
  });

  it('carries a stable code', () => {
    expect(new PasskeyRequiredError('crsc_continuation')).toMatchObject({ code: 'WA_PASSKEY_REQUIRED', step: 'crsc_continuation' });
  });
});
