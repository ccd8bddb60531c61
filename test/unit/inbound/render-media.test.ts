/** Inbound media are streamed and cut at INBOUND_MEDIA_MAX_BYTES, whatever size the sender declared. */
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { renderInbound } from '../../../src/inbound/render.js';
import type { InboundMessage } from '../../../src/model/inbound.js';
import { spoolToFile, TooLargeError } from '../../../src/lib/spool.js';

function image(sizeBytes: number): InboundMessage {
  return {
    waId: 'IMG1',
    chatId: '5511911112222@s.whatsapp.net',
    chatKind: 'direct',
    peer: { pnJid: '5511911112222@s.whatsapp.net' },
    fromMe: false,
    timestampS: 1,
    upsertType: 'notify',
    content: { kind: 'media', media: 'image', mimetype: 'image/jpeg', caption: 'olha', sizeBytes, ref: '{}' },
  };
}

/** A stream that never ends, counting what was read from it. */
function endless(read: { bytes: number }): Readable {
  return new Readable({
    read() {
      read.bytes += 16 * 1024;
      this.push(Buffer.alloc(16 * 1024, 1));
    },
  });
}

const deps = (fetch: () => Promise<Readable>) => ({ maxMediaBytes: 256 * 1024, fetchMedia: fetch, chatId: '5511911112222@s.whatsapp.net', relayed: () => Promise.resolve(undefined) });

async function spooledFiles(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((n) => n.startsWith('ponte-media-'));
}

describe('inbound media', () => {
  it('a sender who declares a small file and sends an endless one gets a note; reading stops at the cap', async () => {
    const before = await spooledFiles();
    const read = { bytes: 0 };
    const r = await renderInbound(image(1000), deps(() => Promise.resolve(endless(read))));
    expect(r).toMatchObject({ kind: 'create', content: 'olha\n[image over the 0.3 MiB limit: not relayed]' });
    expect(r.kind === 'create' && r.attachment).toBeFalsy();
    expect(read.bytes).toBeLessThan(1024 * 1024);
    expect(await spooledFiles()).toEqual(before);
  });

  it('a file within the cap is spooled to a temporary file with its bytes', async () => {
    const data = Buffer.alloc(100_000, 7);
    const r = await renderInbound(image(data.length), deps(() => Promise.resolve(Readable.from([data.subarray(0, 40_000), data.subarray(40_000)]))));
    if (r.kind !== 'create' || !r.attachment || !('file' in r.attachment)) throw new Error('expected a spooled attachment');
    expect(r.attachment.bytes).toBe(data.length);
    expect((await readFile(r.attachment.file)).equals(data)).toBe(true);
    await rm(r.attachment.file);
  });

  it('spoolToFile names the size it stopped at', async () => {
    const read = { bytes: 0 };
    const err = await spoolToFile(endless(read), { maxBytes: 50_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TooLargeError);
    expect((err as TooLargeError).bytes).toBeGreaterThan(50_000);
  });
});
