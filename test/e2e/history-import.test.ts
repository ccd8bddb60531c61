/**
 * The history import end to end: the sandbox phone sends a history set as a
 * live socket emits it (`POST /sandbox/instances/:i/history`), the daemon
 * imports it into the Chatwoot double, per chat oldest first, once, with
 * each message's original time in its content and `external_created_at`,
 * while live messages keep arriving; a second import creates nothing;
 * older history waits for `erga import`; an import resumes after its
 * worker is killed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChatwootDouble, type ChatwootDouble, type CwMessageRecord } from '../support/chatwoot-double/index.js';
import { api, type Daemon, instanceStatus, startDaemon, until } from '../support/daemon.js';
import { daemonEnv, scanSandbox, SECRET, startConversation, tearDown, tempDir } from '../support/e2e.js';
import { randomPrefix } from '../support/redis.js';

const TZ = 'America/Sao_Paulo';
const SIGNING = 'account-webhook-signing-secret';
const DAY = 86_400;
const MEDIA_MAX = 4096;

interface ImportStatus {
  state: string;
  chats: number;
  messages: number;
  created: number;
  skipped: number;
  errors: number;
}

interface HistoryEntry {
  from: string;
  pushName?: string;
  id: string;
  type?: string;
  text?: string;
  media?: string;
  caption?: string;
  timestamp: number;
}

/** The prefix a message written at `ts` should carry, computed apart from Ponte's own code: `sv-SE` writes `YYYY-MM-DD HH:MM:SS`. */
function expectedPrefix(ts: number): string {
  const at = new Date(ts * 1000).toLocaleString('sv-SE', { timeZone: TZ });
  const today = new Date().toLocaleString('sv-SE', { timeZone: TZ });
  const [date, time] = at.split(' ');
  return date === today.split(' ')[0] ? `[${time!.slice(0, 5)}]` : `[${date} ${time!.slice(0, 5)}]`;
}

describe('the history import, black box', () => {
  let double: ChatwootDouble;
  let daemon: Daemon;
  let sessions: string;
  let prefix: string;
  let accountId: number;
  let ana: number;
  let site: number;

  beforeAll(async () => {
    double = await startChatwootDouble();
    accountId = double.addAccount().id;
    site = double.addInbox({ accountId, name: 'Site' }).id;
    ana = double.addUser({ name: 'Ana', email: 'ana@example.com' }).id;
    sessions = await tempDir('ponte-e2e-hist-');
    prefix = randomPrefix();
    const env = daemonEnv(
      { double, sessions, prefix },
      {
        TZ,
        MAX_WORKERS: '1',
        HISTORY_IMPORT_DAYS: '7',
        INBOUND_MEDIA_MAX_BYTES: String(MEDIA_MAX),
        CHATWOOT_ACCOUNT_WEBHOOK_SECRET: SIGNING,
        WEBHOOK_AUTHORIZED_AGENT_EMAILS: 'ana@example.com',
        INSTANCE_LEASE_TTL_MS: '3000',
        BULLMQ_LOCK_DURATION_MS: '3000',
        BULLMQ_STALLED_INTERVAL_MS: '1000',
        SHUTDOWN_TIMEOUT_MS: '10000',
      },
    );
    daemon = await startDaemon(env);
    double.addAccountWebhook({ accountId, url: `${daemon.base}/webhook/comando?token=${SECRET}`, subscriptions: ['message_created'], secret: SIGNING });
  }, 90_000);

  afterAll(() => tearDown({ daemons: [daemon], close: [double], prefix, dir: sessions }));

  /** A website conversation (where operators read progress). */
  async function siteConversation(phone: string): Promise<number> {
    return startConversation(double, accountId, { inbox: site, name: `Operador ${phone}`, phone, sourceId: `src-${phone}` });
  }

  const all = (): CwMessageRecord[] => double.conversations(accountId).flatMap((c) => double.messages(accountId, c.id));
  const bySource = (): Map<string, CwMessageRecord[]> => {
    const m = new Map<string, CwMessageRecord[]>();
    for (const msg of all()) if (msg.source_id) m.set(msg.source_id, [...(m.get(msg.source_id) ?? []), msg]);
    return m;
  };
  const replies = (conversationId: number): string[] =>
    double
      .messages(accountId, conversationId)
      .filter((m) => (m.source_id ?? '').startsWith('PONTE:'))
      .map((m) => m.content ?? '')
      .filter((c) => c.includes('History import'));
  const importOf = async (key: string): Promise<ImportStatus | null> => ((await instanceStatus(daemon, key)) as unknown as { import: ImportStatus | null } | undefined)?.import ?? null;
  const conversationOf = (phone: string): number | undefined => {
    const contact = double.contacts(accountId).find((c) => c.phone_number === `+${phone}`);
    return double.conversations(accountId).find((c) => c.contact_id === contact?.id && c.inbox_id !== site)?.id;
  };

  async function link(name: string, phone: string, notify?: number): Promise<string> {
    const inbox = double.addInbox({ accountId, name }).id;
    const key = `${accountId}-${inbox}`;
    expect((await api(daemon, 'POST', '/admin/instances', { inbox, account: accountId, ...(notify ? { notify: { account: accountId, conversation: notify } } : {}) })).status).toBe(201);
    await scanSandbox(daemon, key, phone);
    return key;
  }

  const phoneOf = (c: number) => `55119800000${String(c).padStart(2, '0')}`;
  const now = Math.floor(Date.now() / 1000);
  // 20 chats of 25 messages over the last six days, oldest first within each chat.
  const history: HistoryEntry[] = [];
  for (let c = 0; c < 20; c++) {
    for (let i = 0; i < 25; i++) {
      history.push({ from: phoneOf(c), pushName: `Cliente ${c}`, id: `H${c}X${i}`, text: `historia ${c}/${i}`, timestamp: now - 6 * DAY + i * 20_000 + c * 37 });
    }
  }
  // Chatwoot refuses content over 150,000 characters: these two fail for good.
  for (const i of [23, 24]) Object.assign(history.find((h) => h.id === `H19X${i}`)!, { text: 'x'.repeat(150_001) });
  // Media: one under INBOUND_MEDIA_MAX_BYTES (attached), one over it (a note).
  Object.assign(history.find((h) => h.id === 'H0X12')!, { type: 'image', media: Buffer.alloc(1000, 7).toString('base64'), caption: 'foto', text: undefined });
  Object.assign(history.find((h) => h.id === 'H1X12')!, { type: 'image', media: Buffer.alloc(MEDIA_MAX + 10, 8).toString('base64'), caption: 'grande', text: undefined });
  // Past HISTORY_IMPORT_DAYS: kept, not imported on their own.
  const older: HistoryEntry[] = Array.from({ length: 20 }, (_, c) => ({ from: phoneOf(c), pushName: `Cliente ${c}`, id: `OLD${c}`, text: `antiga ${c}`, timestamp: now - 9 * DAY + c * 60 }));
  // Relayed live before the history comes: two per chat in the first 15 chats.
  const liveBefore = history.filter((h) => Number(/^H(\d+)X/.exec(h.id)![1]) < 15 && Number(/X(\d+)$/.exec(h.id)![1]) < 2);
  const skippedIds = new Set(liveBefore.map((h) => h.id));
  const failingIds = new Set(['H19X23', 'H19X24']);
  let key: string;
  let notifyConv: number;

  it('imports 500 messages over 20 chats once, oldest first, with their times, while live messages keep flowing', async () => {
    notifyConv = await siteConversation('+5521911110000');
    key = await link('WhatsApp Loja', '5511955550000', notifyConv);
    expect(liveBefore).toHaveLength(30);
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { messages: liveBefore.map(({ timestamp: _t, ...m }) => m) })).status).toBe(201);
    await until('30 live messages relayed', () => Promise.resolve(all().length >= 30), daemon);

    // Bad history requests are refused with the entry named.
    const bad = await api(daemon, 'POST', `/sandbox/instances/${key}/history`, { messages: [history[0], { from: phoneOf(1), text: 'x', timestamp: -1 }] });
    expect(bad.status).toBe(400);
    expect(String(bad.json.message)).toMatch(/^messages\[1\]\.timestamp/);

    // Every Chatwoot call takes 20 ms: the import of ~470 creates takes seconds, a live message a few calls.
    const fast = double.faults.slow(20);
    try {
      const sent = await api(daemon, 'POST', `/sandbox/instances/${key}/history`, { messages: [...history, ...older], contacts: [{ jid: `${phoneOf(0)}@s.whatsapp.net`, name: 'Cliente Zero' }] });
      expect(sent.status).toBe(201);
      expect((sent.json.ids as string[]).length).toBe(520);
      await until('the import under way', async () => ((await importOf(key))?.created ?? 0) >= 20, daemon);

      // Live messages during the import: to chats being imported and to new ones.
      const live = [0, 1, 2, 3, 4, 20, 21].map((c) => ({ from: phoneOf(c), pushName: `Cliente ${c}`, text: `ao vivo ${c}`, id: `LIVE${c}` }));
      expect((await api(daemon, 'POST', `/sandbox/instances/${key}/messages`, { messages: live })).status).toBe(201);
      await until('the live messages relayed', () => Promise.resolve(live.every((l) => bySource().has(`WAID:${l.id}`))), daemon);
      // They arrived while the import was still running: they did not wait behind it.
      const during = (await importOf(key))!;
      expect(during.state).toBe('running');
      expect(during.created).toBeLessThan(468);
    } finally {
      fast();
    }

    const done = await until('the import done', async () => {
      const s = await importOf(key);
      return s?.state === 'done' ? s : undefined;
    }, daemon, 120_000);
    expect(done).toEqual({ state: 'done', chats: 20, messages: 500, created: 468, skipped: 30, errors: 2 });

    // Each message once; the refused ones and the older ones not at all.
    const sources = bySource();
    for (const h of history) {
      const copies = sources.get(`WAID:${h.id}`) ?? [];
      expect(copies, h.id).toHaveLength(failingIds.has(h.id) ? 0 : 1);
    }
    for (const o of older) expect(sources.has(`WAID:${o.id}`)).toBe(false);
    expect([...sources.values()].every((copies) => copies.length === 1)).toBe(true);

    // Each chat in its contact's one conversation, imported messages oldest first, with their original time.
    for (let c = 0; c < 20; c++) {
      const conv = conversationOf(phoneOf(c));
      expect(conv, `conversation of chat ${c}`).toBeDefined();
      const messages = double.messages(accountId, conv!);
      const imported = messages.filter((m) => /^WAID:H\d+X\d+$/.test(m.source_id ?? '') && !skippedIds.has(m.source_id!.slice(5)));
      const expected = history.filter((h) => h.from === phoneOf(c) && !skippedIds.has(h.id) && !failingIds.has(h.id));
      expect(imported.map((m) => m.source_id)).toEqual(expected.map((h) => `WAID:${h.id}`));
      for (const [i, m] of imported.entries()) {
        const h = expected[i]!;
        // A multipart create (the photo) carries it as text, as every multipart field.
        expect(Number(m.content_attributes.external_created_at)).toBe(h.timestamp);
        expect(m.message_type).toBe('incoming');
        if (h.text !== undefined) expect(m.content).toBe(`${expectedPrefix(h.timestamp)} ${h.text}`);
        else expect(m.content!.startsWith(`${expectedPrefix(h.timestamp)} ${h.caption!}`)).toBe(true);
      }
    }
    const photo = sources.get('WAID:H0X12')![0]!;
    expect(photo.attachments).toHaveLength(1);
    expect(photo.attachments[0]!.data.length).toBe(1000);
    const large = sources.get('WAID:H1X12')![0]!;
    expect(large.attachments).toHaveLength(0);
    expect(large.content).toMatch(/limit/);

    // Progress in the notify conversation: start, each quarter, end, with the counts.
    await until('the end message', () => Promise.resolve(replies(notifyConv).some((r) => r.includes('done'))), daemon);
    const progress = replies(notifyConv);
    expect(progress[0]).toMatch(new RegExp(`^📥 History import of ${key} started: 500 message\\(s\\) in 20 chat\\(s\\) from the last 7 days; created 0, skipped 0, errors 0\\.$`));
    expect(progress.slice(1, 4).map((p) => /: (\d+) % \((\d+) of 500 messages\); created (\d+), skipped (\d+), errors (\d+)\./.exec(p)?.slice(1, 3))).toEqual([
      ['25', '125'],
      ['50', '250'],
      ['75', '375'],
    ]);
    for (const p of progress.slice(1, 4)) {
      const [, c, s, e] = /created (\d+), skipped (\d+), errors (\d+)/.exec(p)!.map(Number);
      expect(c! + s! + e!).toBe(Number(/\((\d+) of/.exec(p)![1]));
    }
    expect(progress[4]).toContain(`History import of ${key} done: 500 message(s) in 20 chat(s); created 468, skipped 30, errors 2.`);
    expect(progress).toHaveLength(5);
  }, 180_000);

  it('a second import of the same history creates nothing; older history waits for erga import', async () => {
    const relayed = () => all().filter((m) => (m.source_id ?? '').startsWith('WAID:')).length;
    const before = relayed();
    expect((await api(daemon, 'POST', `/sandbox/instances/${key}/history`, { messages: [...history, ...older] })).status).toBe(201);
    const again = await until('the second import done', async () => {
      const s = await importOf(key);
      return s?.state === 'done' && s.skipped > 0 && s.created === 0 ? s : undefined;
    }, daemon, 60_000);
    // What Chatwoot refused is tried again (and refused again); everything else is there already.
    expect(again).toEqual({ state: 'done', chats: 20, messages: 500, created: 0, skipped: 498, errors: 2 });
    await until('its end message', () => Promise.resolve(replies(notifyConv).filter((r) => r.includes('done')).length === 2), daemon);
    expect(relayed()).toBe(before);

    // The admin route refuses bad input.
    expect((await api(daemon, 'POST', `/admin/instances/${key}/import`, { days: 31 })).status).toBe(400);
    expect((await api(daemon, 'POST', `/admin/instances/${key}/import`, { days: 'x' })).status).toBe(400);
    expect((await api(daemon, 'POST', `/admin/instances/${accountId}-999/import`, {})).status).toBe(404);
    // Within HISTORY_IMPORT_DAYS nothing is left.
    const nothing = await api(daemon, 'POST', `/admin/instances/${key}/import`, {});
    expect(nothing).toMatchObject({ status: 202, json: { instance: key, running: false, started: false, messages: 0, days: 7 } });

    // An agent asks for 15 days in another conversation: the older messages come, with their dates.
    const here = await siteConversation('+5521922220000');
    const inbox = Number(key.split('-')[1]);
    double.createAgentMessage(accountId, here, { content: `erga import ${inbox} 15`, private: true, userId: ana });
    await until('the erga import done', () => Promise.resolve(replies(here).some((r) => r.includes('done'))), daemon, 60_000);
    const said = replies(here);
    expect(said[0]).toContain(`History import of ${key} started: 20 message(s) in 20 chat(s) from the last 15 days; created 0, skipped 0, errors 0.`);
    expect(said.at(-1)).toContain('created 20, skipped 0, errors 0.');
    expect(double.messages(accountId, here).filter((m) => (m.source_id ?? '').startsWith('PONTE:')).every((m) => m.private)).toBe(true);
    for (const o of older) {
      const [m] = bySource().get(`WAID:${o.id}`) ?? [];
      expect(m?.content).toBe(`${expectedPrefix(o.timestamp)} ${o.text!}`);
      expect(m?.content).toMatch(/^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}\] /);
      expect(m?.conversation_id).toBe(conversationOf(o.from));
    }
    await until('the status of the erga import', async () => {
      const s = await importOf(key);
      return s?.state === 'done' && s.messages === 20 && s.created === 20 && s.skipped === 0 && s.errors === 0;
    }, daemon);
  }, 120_000);

  it('resumes after its worker is killed, and creates each message once', async () => {
    const other = await link('WhatsApp Filial', '5511955551111');
    const chats = [30, 31, 32, 33];
    const set = chats.flatMap((c) => Array.from({ length: 50 }, (_, i) => ({ from: phoneOf(c), id: `R${c}X${i}`, text: `retomada ${c}/${i}`, timestamp: now - 2 * DAY + i * 600 + c })));
    const fast = double.faults.slow(20);
    try {
      expect((await api(daemon, 'POST', `/sandbox/instances/${other}/history`, { messages: set })).status).toBe(201);
      const underWay = await until('the import under way', async () => {
        const s = await importOf(other);
        return (s?.created ?? 0) >= 40 ? s : undefined;
      }, daemon);
      const { json } = await api(daemon, 'GET', '/global-status');
      const slot = (await instanceStatus(daemon, other))!.worker!;
      const pid = (json.workers as Array<{ id: number; pid: number }>).find((w) => w.id === slot)!.pid;
      process.kill(pid, 'SIGKILL');
      // Killed mid-import (the status is at most a second old, and the rest takes seconds more).
      expect(underWay!.created).toBeLessThan(150);
      await until('the worker back', async () => {
        const { json: s } = await api(daemon, 'GET', '/global-status');
        return (s.workers as Array<{ id: number; pid: number; ready: boolean }>).some((w) => w.id === slot && w.pid !== pid && w.ready);
      }, daemon);
    } finally {
      fast();
    }
    const done = await until('the resumed import done', async () => {
      const s = await importOf(other);
      return s?.state === 'done' ? s : undefined;
    }, daemon, 120_000);
    expect(done).toEqual({ state: 'done', chats: 4, messages: 200, created: 200, skipped: 0, errors: 0 });
    const sources = bySource();
    for (const m of set) expect(sources.get(`WAID:${m.id}`) ?? [], m.id).toHaveLength(1);
    for (const c of chats) {
      const ids = double.messages(accountId, conversationOf(phoneOf(c))!).map((m) => m.source_id);
      expect(ids).toEqual(set.filter((m) => m.from === phoneOf(c)).map((m) => `WAID:${m.id}`));
    }
  }, 180_000);
});
