import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.js';
import type { InboundMessage } from '../../../src/model/inbound.js';
import { createLogger } from '../../../src/observability/logger.js';
import { SessionInbound } from '../../../src/worker/session-inbound.js';
import { buildTextMessage } from '../../../src/whatsapp/sandbox/message-builder.js';
import { linkedMemoryAuthState, SandboxSocket, silentBaileysLogger } from '../../../src/whatsapp/sandbox/sandbox-socket.js';

const log = createLogger({ level: 'silent' });

function socket(): SandboxSocket {
  return new SandboxSocket({ instanceKey: '1-2', auth: linkedMemoryAuthState('5511900000000'), logger: silentBaileysLogger, browser: ['Ponte', 'Chrome', '1.0'] });
}

describe('SessionInbound', () => {
  it('hands over direct and group messages in order, and drops group messages when the instance ignores groups', async () => {
    for (const ignoreGroups of [false, true]) {
      const s = socket();
      const got: InboundMessage[] = [];
      const inbound = new SessionInbound(s.ev, { enqueue: (m) => Promise.resolve(got.push(m)), log, ignoreGroups });
      s.receive([
        buildTextMessage({ fromPn: '5511911110000', text: 'um', id: 'D1' }),
        buildTextMessage({ group: { jid: '120363000000000001@g.us' }, fromPn: '5511922220000', text: 'grupo', id: 'G1' }),
        buildTextMessage({ fromPn: '5511911110000', text: 'dois', id: 'D2' }),
      ]);
      await inbound.idle();
      expect(got.map((m) => m.waId)).toEqual(ignoreGroups ? ['D1', 'D2'] : ['D1', 'G1', 'D2']);
      await inbound.stop();
    }
  });

  it('drops the echoes of messages Ponte sent itself, keeps messages typed on the phone', async () => {
    const s = socket();
    const got: string[] = [];
    const own = new Set(['OWN1']);
    const inbound = new SessionInbound(s.ev, { enqueue: (m) => Promise.resolve(got.push(m.waId)), log, isOwnSend: (id) => own.has(id) });
    s.receive([buildTextMessage({ fromPn: '5511911110000', fromMe: true, text: 'eco', id: 'OWN1' }), buildTextMessage({ fromPn: '5511911110000', fromMe: true, text: 'do celular', id: 'PHONE1' })], 'append');
    await inbound.idle();
    expect(got).toEqual(['PHONE1']);
    await inbound.stop();
  });
});

describe('GROUPS_IGNORED', () => {
  const base = { CHATWOOT_BASE_URL: 'http://cw.example', CHATWOOT_API_ACCESS_TOKEN: 't', WEBHOOK_SECRET: '0123456789abcdef', SERVER_HOST: '127.0.0.1' };
  it('takes instance keys or all', () => {
    expect(loadConfig({ ...base, GROUPS_IGNORED: '1-12, 3-4' }).inbound.groupsIgnored).toEqual(['1-12', '3-4']);
    expect(loadConfig({ ...base, GROUPS_IGNORED: 'all' }).inbound.groupsIgnored).toEqual(['all']);
    expect(loadConfig(base).inbound.groupsIgnored).toEqual([]);
  });
  it('refuses anything else, naming the variable', () => {
    let caught: unknown;
    try {
      loadConfig({ ...base, GROUPS_IGNORED: '1-12,vendas' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems.join('\n')).toContain('GROUPS_IGNORED');
  });
});
