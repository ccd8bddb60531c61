import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.js';
import type { InboundMessage } from '../../../src/model/inbound.js';
import { createLogger } from '../../../src/observability/logger.js';
import { SessionInbound } from '../../../src/worker/session-inbound.js';
import { buildTextMessage } from '../../../src/sandbox/message-builder.js';
import { SandboxSocket } from '../../../src/sandbox/sandbox-socket.js';
import { linkedMemoryAuthState, silentBaileysLogger } from '../../support/sandbox-auth.js';

const log = createLogger({ level: 'silent' });

function socket(): SandboxSocket {
  return new SandboxSocket({ instanceKey: '1-2', auth: linkedMemoryAuthState('5511900000000'), logger: silentBaileysLogger, browser: ['Ponte', 'Chrome', '1.0'] });
}

describe('SessionInbound', () => {
  it('hands over direct and group messages in order, and drops group messages when the instance ignores groups', async () => {
    for (const ignoreGroups of [false, true]) {
      const s = socket();
      const got: InboundMessage[] = [];
      const inbound = new SessionInbound(s.ev, { handOver: (m) => Promise.resolve(got.push(m)), log, ignoreGroups });
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
    const inbound = new SessionInbound(s.ev, { handOver: (m) => Promise.resolve(got.push(m.waId)), log, isOwnSend: (id) => own.has(id) });
    s.receive([buildTextMessage({ fromPn: '5511911110000', fromMe: true, text: 'eco', id: 'OWN1' }), buildTextMessage({ fromPn: '5511911110000', fromMe: true, text: 'do celular', id: 'PHONE1' })], 'append');
    await inbound.idle();
    expect(got).toEqual(['PHONE1']);
    await inbound.stop();
  });
});

describe('SessionInbound under failures', () => {
  it('a hand-over that throws once is retried and does not break the chain for the messages after it', async () => {
    const s = socket();
    const got: string[] = [];
    let fails = 1;
    const inbound = new SessionInbound(s.ev, {
      handOver: (m) => {
        if (m.waId === 'F1' && fails-- > 0) return Promise.reject(new Error('disk full'));
        got.push(m.waId);
        return Promise.resolve();
      },
      log,
      retryDelayMs: { min: 1, max: 5 },
    });
    s.receive([buildTextMessage({ fromPn: '5511911110000', text: 'um', id: 'F1' })]);
    s.receive([buildTextMessage({ fromPn: '5511911110000', text: 'dois', id: 'F2' })]);
    await inbound.idle();
    expect(got).toEqual(['F1', 'F2']);
    await inbound.stop();
  });

  it('stop() returns while the store refuses every message, instead of waiting forever', async () => {
    const s = socket();
    let attempts = 0;
    const inbound = new SessionInbound(s.ev, {
      handOver: () => {
        attempts += 1;
        return Promise.reject(new Error('nowhere to store it'));
      },
      log,
      retryDelayMs: { min: 1, max: 5 },
      stopTimeoutMs: 50,
    });
    s.receive([buildTextMessage({ fromPn: '5511911110000', text: 'um', id: 'S1' })]);
    while (attempts < 3) await new Promise((r) => setTimeout(r, 5));
    await inbound.stop();
    const after = attempts;
    await new Promise((r) => setTimeout(r, 30));
    // Stopped for good: no retry loop left behind.
    expect(attempts - after).toBeLessThanOrEqual(1);
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
