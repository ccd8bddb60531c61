import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/logger.js';

function collectingLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { log: createLogger({ level: 'debug', destination }), lines };
}

describe('logger redaction', () => {
  it('never writes tokens, secrets or message bodies', () => {
    const { log, lines } = collectingLogger();
    log.info({ token: 'tok-1', secret: 'sec-1', api_access_token: 'cw-1', content: 'hello body' }, 'top level');
    log.info({ request: { headers: { api_access_token: 'cw-2', authorization: 'Bearer b-1', 'x-ponte-token': 'p-1' } } }, 'nested headers');
    log.info({ message: { content: 'private words', text: 'more words', caption: 'a caption' } }, 'nested body');
    log.child({ module: 'chatwoot' }).warn({ config: { chatwoot: { apiAccessToken: 'cw-3' } } }, 'deep config');
    const out = lines.join('');
    for (const s of ['tok-1', 'sec-1', 'cw-1', 'hello body', 'cw-2', 'b-1', 'p-1', 'private words', 'more words', 'a caption']) {
      expect(out).not.toContain(s);
    }
    expect(out).toContain('[redacted]');
    expect(lines).toHaveLength(4);
  });
});
