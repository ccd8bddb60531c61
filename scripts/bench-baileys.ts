/**
 * Real-driver figures for `npm run bench` (`BENCH_ONLY=baileys`): the whole
 * daemon with `WHATSAPP_DRIVER=baileys`, its unmodified Baileys rc14 sockets
 * pointed (`WHATSAPP_WS_URL` and the preload) at the loopback WhatsApp server
 * of `test/support/whatsapp-server`, which runs in this process.
 *
 * BENCH_BAILEYS_INSTANCES numbers are linked through the admin API (each QR
 * read with `?format=text` and scanned by the server's phone side), and it
 * prints:
 *   - the workers' RSS and heap per idle logged-in instance, against the same
 *     daemon with no instance, once after linking and once after the restore;
 *   - the restore time: SIGTERM, then a new daemon on the same session folder
 *     and Redis prefix, from its spawn until every instance is open again
 *     without having shown a QR.
 */
import { startChatwootDouble } from '../test/support/chatwoot-double/index.js';
import { preloadEnv, preloadNodeArgs, startWhatsAppServer, type WhatsAppServer } from '../test/support/whatsapp-server/index.js';
import { type BenchDaemon, type BenchDaemonOptions, sleep, startBenchDaemon } from './bench-daemon.js';

const INSTANCES = Number(process.env.BENCH_BAILEYS_INSTANCES ?? 50);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const STAGGER_MS = Number(process.env.BENCH_RESTORE_STAGGER_MS ?? 0);
/** When set: the daemon's and Baileys' log level, and the daemon's log is shown. */
const LOG_LEVEL = process.env.BENCH_BAILEYS_LOG_LEVEL;
/** Numbers linked at the same time (each: create, QR, scan, login). */
const LINK_CONCURRENCY = 5;
/** Time for post-login traffic (pre-key upload, app state) to settle before memory is sampled. */
const SETTLE_MS = 5000;
/**
 * Node flags for the daemon on top of the loopback preload: a worker runs a
 * full garbage collection on SIGUSR2. Linking leaves hundreds of MiB of
 * garbage that V8 may keep for minutes (no major GC runs while the workers
 * idle), so heap figures without it measure the collector's timing, not what
 * the instances hold.
 */
const GC_ON_SIGNAL = ['--expose-gc', '--import', 'data:text/javascript,process.on("SIGUSR2",()=>globalThis.gc())'];
/** A worker reports its memory every second; this is one report and a margin. */
const REPORT_MS = 1200;
/** How long one number may take from create to a scanned QR, and all of them to be open, before the bench gives up. */
const LINK_TIMEOUT_MS = 60_000;
const OPEN_TIMEOUT_MS = 60_000 + INSTANCES * 1000;

interface StatusInstance {
  instance: string;
  state: string;
  qrAttempts: number;
  lastError: string | null;
}

interface Status {
  workers: Array<{ pid: number | null; restarts: number; memory: { rssBytes: number; heapUsedBytes: number } | null }>;
  instances: StatusInstance[];
}

async function status(d: BenchDaemon): Promise<Status> {
  const res = await d.call('GET', '/global-status');
  if (res.status !== 200) throw new Error(`/global-status answered ${res.status}`);
  return res.json as unknown as Status;
}

function describe(instances: readonly StatusInstance[]): string {
  return instances.map((i) => `${i.instance} ${i.state}${i.qrAttempts > 0 ? ` (${i.qrAttempts} QR)` : ''}${i.lastError ? `: ${i.lastError}` : ''}`).join('; ');
}

/** The workers' memory summed, averaged over five reports, each after a full collection (SIGUSR2, see GC_ON_SIGNAL), once SETTLE_MS has passed. */
async function workerMemory(d: BenchDaemon): Promise<{ rss: number; heapUsed: number }> {
  await sleep(SETTLE_MS);
  let rss = 0;
  let heapUsed = 0;
  const samples = 5;
  for (let i = 0; i < samples; i++) {
    for (const w of (await status(d)).workers) if (w.pid !== null) process.kill(w.pid, 'SIGUSR2');
    await sleep(REPORT_MS);
    const { workers } = await status(d);
    // Without the handler SIGUSR2 would have ended the worker; its replacement's figures would mean nothing.
    if (workers.some((w) => w.restarts > 0 || w.memory === null)) throw new Error('a worker restarted or stopped reporting while its memory was sampled');
    for (const w of workers) {
      rss += w.memory?.rssBytes ?? 0;
      heapUsed += w.memory?.heapUsedBytes ?? 0;
    }
  }
  return { rss: rss / samples, heapUsed: heapUsed / samples };
}

function withDeadline<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Creates `<account>-<inbox>` through the admin API, reads its QR and scans it as `phone`; resolves once the daemon confirmed the pairing. */
async function link(d: BenchDaemon, server: WhatsAppServer, accountId: number, inboxId: number, phone: string): Promise<void> {
  const key = `${accountId}-${inboxId}`;
  const created = await d.call('POST', '/admin/instances', { inbox: inboxId, account: accountId });
  if (created.status !== 201) throw new Error(`POST /admin/instances for ${key} answered ${created.status}: ${JSON.stringify(created.json)}`);
  const qr = await withDeadline(
    `the QR of ${key}`,
    LINK_TIMEOUT_MS,
    (async () => {
      for (;;) {
        const r = await d.call('GET', `/admin/instances/${key}/qr?format=text`);
        if (r.status === 200 && typeof r.json.qr === 'string') return r.json.qr;
        await sleep(100);
      }
    })(),
  );
  await withDeadline(`the pairing of ${key}`, LINK_TIMEOUT_MS, server.scanQr(qr, { phone }));
}

/** Polls /global-status until every instance is open; throws when one shows a QR (with `noQr`) or at the deadline. */
async function allOpen(d: BenchDaemon, count: number, o: { noQr: boolean }): Promise<void> {
  const deadline = performance.now() + OPEN_TIMEOUT_MS;
  for (;;) {
    if (d.proc.exitCode !== null || d.proc.signalCode !== null) throw new Error('the daemon exited while its instances were opening');
    const { instances } = await status(d);
    const pairing = o.noQr ? instances.filter((i) => i.qrAttempts > 0 || i.state === 'awaiting_scan') : [];
    if (pairing.length > 0) throw new Error(`restored instances asked for a QR: ${describe(pairing)}`);
    const waiting = instances.filter((i) => i.state !== 'open');
    if (instances.length === count && waiting.length === 0) return;
    if (performance.now() > deadline) throw new Error(`${count - instances.length + waiting.length} of ${count} instances not open after ${OPEN_TIMEOUT_MS} ms: ${describe(waiting)}`);
    await sleep(50);
  }
}

export async function benchBaileys(redisUrl: string): Promise<void> {
  const server = await startWhatsAppServer();
  const double = await startChatwootDouble({ webhooksEnabled: false });
  const daemonOptions = (label: string): BenchDaemonOptions => ({
    redisUrl,
    double,
    label,
    driver: 'baileys',
    nodeArgs: [...GC_ON_SIGNAL, ...preloadNodeArgs()],
    env: {
      ...preloadEnv(server.url),
      MAX_WORKERS: String(WORKERS),
      RESTORE_STAGGER_MS: String(STAGGER_MS),
      ...(LOG_LEVEL ? { SERVER_LOG_LEVEL: LOG_LEVEL, BAILEYS_LOG_LEVEL_INSTANCE: LOG_LEVEL } : {}),
    },
    stdout: LOG_LEVEL ? 'inherit' : 'ignore',
  });
  let daemon: BenchDaemon | undefined;
  try {
    // Baseline: the same daemon, driver and preload, with no instance.
    daemon = await startBenchDaemon(daemonOptions('baileys-empty'));
    const base = await workerMemory(daemon);
    await daemon.stop();
    daemon = undefined;

    daemon = await startBenchDaemon(daemonOptions('baileys'));
    const linking = daemon;
    const account = double.addAccount();
    const inboxes = Array.from({ length: INSTANCES }, (_v, i) => ({ inboxId: double.addInbox({ accountId: account.id, name: `bench baileys ${i}` }).id, phone: `55119${70_000_000 + i}` }));
    const linkStart = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(LINK_CONCURRENCY, INSTANCES) }, async () => {
        for (let item = inboxes[next++]; item; item = inboxes[next++]) await link(linking, server, account.id, item.inboxId, item.phone);
      }),
    );
    await allOpen(linking, INSTANCES, { noQr: false });
    const linkS = (performance.now() - linkStart) / 1000;
    const loaded = await workerMemory(linking);

    // A restart: the same session folder and prefix, restored at start-up.
    await linking.stop({ keep: true });
    daemon = await startBenchDaemon({ ...daemonOptions('baileys'), reuse: { sessions: linking.sessions, prefix: linking.prefix } });
    const readyS = (performance.now() - daemon.startedAtMs) / 1000;
    await allOpen(daemon, INSTANCES, { noQr: true });
    const restoreS = (performance.now() - daemon.startedAtMs) / 1000;
    const restored = await workerMemory(daemon);

    const mib = (bytes: number) => bytes / 1024 / 1024;
    const perInstance = (m: { rss: number; heapUsed: number }) => `${mib((m.rss - base.rss) / INSTANCES).toFixed(2)} MiB RSS, ${mib((m.heapUsed - base.heapUsed) / INSTANCES).toFixed(2)} MiB heap`;
    const total = (m: { rss: number; heapUsed: number }) => `${mib(m.rss).toFixed(0)} MiB RSS (${mib(m.heapUsed).toFixed(0)} MiB heap)`;
    console.log(`baileys: ${INSTANCES} numbers on the Baileys driver over ${WORKERS} workers, against the loopback WhatsApp server (restore stagger ${STAGGER_MS} ms)`);
    console.log(`  linked through the admin API (create → all open, ${LINK_CONCURRENCY} at a time):  ${linkS.toFixed(1)} s`);
    console.log(`  worker memory per idle logged-in instance, after linking:  ${perInstance(loaded)}`);
    console.log(`  the same after the restore:                                ${perInstance(restored)}`);
    console.log(`  workers in total (after a full GC): ${total(loaded)} linked, ${total(restored)} restored, ${total(base)} with no instance`);
    console.log(`  restore after SIGTERM (spawn → all open, no QR):  ${restoreS.toFixed(1)} s (${readyS.toFixed(1)} s of it until /readyz answered)`);
    if (server.errors.length > 0) console.log(`  the WhatsApp server recorded ${server.errors.length} protocol errors; the first: ${String(server.errors[0]?.error)}`);
  } finally {
    await daemon?.stop();
    await server.close();
    await double.close();
  }
}
