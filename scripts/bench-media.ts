/**
 * Media figures for `npm run bench`: BENCH_MEDIA images of BENCH_MEDIA_KB
 * each arrive from WhatsApp (sandbox driver) and are downloaded and uploaded
 * to the Chatwoot double as attachments. Prints images per second, MiB per
 * second, and the peak RSS of the worker while relaying them (sampled from
 * /global-status).
 */
import { randomBytes } from 'node:crypto';
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';
import { type BenchDaemon, sleep, startBenchDaemon } from './bench-daemon.js';
import { atLeast, atMost, type Figures } from './bench-figures.js';

const COUNT = Number(process.env.BENCH_MEDIA ?? 200);
const KB = Number(process.env.BENCH_MEDIA_KB ?? 350);

export async function benchMedia(redisUrl: string, figures: Figures): Promise<void> {
  const double = await startChatwootDouble({ webhooksEnabled: false });
  let daemon: BenchDaemon | undefined;
  try {
    const account = double.addAccount();
    const inbox = double.addInbox({ accountId: account.id, name: 'bench media' });
    daemon = await startBenchDaemon({ redisUrl, double, label: 'media' });
    const key = await daemon.linkSandbox(account.id, inbox.id, '5511900000002');
    const call = (method: string, path: string, body?: unknown) => daemon!.call(method, path, body);
    // JPEG-framed random bytes of a realistic photo size.
    const images = Array.from({ length: COUNT }, () => Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), randomBytes(KB * 1024 - 6), Buffer.from('ffd9', 'hex')]).toString('base64'));
    let peakRss = 0;
    let peakHeap = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await call('GET', '/global-status');
        for (const w of (s.json.workers as Array<{ memory: { rssBytes: number; heapUsedBytes: number } | null }> | undefined) ?? []) {
          peakRss = Math.max(peakRss, w.memory?.rssBytes ?? 0);
          peakHeap = Math.max(peakHeap, w.memory?.heapUsedBytes ?? 0);
        }
        await sleep(250);
      }
    })();
    const start = performance.now();
    for (let i = 0; i < COUNT; i++) {
      await call('POST', `/sandbox/instances/${key}/messages`, { from: `55119${String(30_000_000 + (i % 20))}`, type: 'image', media: images[i], mimetype: 'image/jpeg', caption: `foto ${i}` });
    }
    const attachments = () => double.conversations(account.id).reduce((n, c) => n + double.messages(account.id, c.id).filter((m) => m.attachments.length > 0).length, 0);
    while (attachments() < COUNT) await sleep(50);
    const seconds = (performance.now() - start) / 1000;
    sampling = false;
    await sampler;
    console.log(`media: ${COUNT} images of ${KB} KiB over 20 chats, one worker`);
    const section = 'media';
    figures.add({ section, name: `images of ${KB} KiB relayed as attachments`, value: COUNT / seconds, unit: 'images/s', target: atLeast(50) });
    figures.add({ section, name: '  the same in MiB', value: (COUNT * KB) / 1024 / seconds, unit: 'MiB/s' });
    figures.add({ section, name: 'worker peak RSS while relaying them', value: peakRss / 1048576, unit: 'MiB', target: atMost(150) });
    figures.add({ section, name: '  its peak JS heap in use', value: peakHeap / 1048576, unit: 'MiB' });
  } finally {
    await daemon?.stop();
    await double.close();
  }
}
