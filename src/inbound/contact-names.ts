/** Gives the Chatwoot contacts of an instance the names WhatsApp knows for the number's contacts, and creates the missing ones on request. */
import type { ChatwootClientLike } from '../chatwoot/types.js';
import { coerceError } from '../lib/errors.js';
import type { ImportNotify } from '../model/history-import.js';
import type { ContactsRunStatus } from '../model/instance.js';
import type { Logger } from '../observability/logger.js';
import type { ContactBook, KnownContact } from './contact-book.js';
import type { ContactResolver } from './contact-resolver.js';

/** A contact as the session hands it over: its addresses (a LID mapped to the number when WhatsApp told it) and names. */
export interface WaContact {
  pnJid?: string;
  lidJid?: string;
  /** The name the number's owner saved. */
  name?: string;
  /** The name the contact set on WhatsApp. */
  notify?: string;
}

/** How a contacts run went, as the worker reports it to the primary at its end. */
export interface ContactsReport {
  status: ContactsRunStatus;
  /** Where the operator who asked for it reads the counts. */
  notify?: ImportNotify;
}

export interface ContactNamesDeps {
  book: ContactBook;
  resolver: Pick<ContactResolver, 'findContact' | 'ensureContact' | 'identityOf'>;
  client: Pick<ChatwootClientLike, 'updateContact'>;
  accountId: number;
  log: Logger;
  report(r: ContactsReport): void;
}

type Outcome = 'created' | 'updated' | 'skipped' | 'absent';

/** A name that is only a phone number or a LID's digits: what Ponte writes when it knows no name. */
export function isNumberPlaceholder(name: string | null | undefined): boolean {
  if (!name || name.trim() === '') return true;
  return /^\+?[\d\s().-]{5,}$/.test(name.trim());
}

/**
 * The names of an instance's contacts. WhatsApp's list of the number's
 * contacts (a history set's `contacts`, `contacts.upsert`,
 * `contacts.update`) is kept in the {@link ContactBook}; each contact Ponte
 * finds in Chatwoot takes WhatsApp's name (the saved one, else the contact's
 * own) when its name there is the one Ponte last wrote or a bare number:
 * an agent's rename stays. A history set's contacts make a run, counted in
 * the instance's status; live changes are applied without a run. A request
 * (`erga contacts`) runs over every kept contact and also creates the
 * contacts Chatwoot lacks (with their contact inbox, no conversation).
 * One run at a time.
 */
export class ContactNames {
  private chain: Promise<unknown> = Promise.resolve();
  private running = false;
  private closing = false;

  constructor(private readonly deps: ContactNamesDeps) {}

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** A run its process left unfinished is marked stopped (a request runs it again, creating nothing twice). */
  async start(): Promise<void> {
    if ((await this.deps.book.run())?.state === 'running') await this.deps.book.endRun('stopped');
  }

  status(): Promise<ContactsRunStatus | undefined> {
    return this.deps.book.run();
  }

  /**
   * WhatsApp sent contacts: they are kept (before this resolves, so a
   * contact created next takes the saved name), then applied in the
   * background: a `history` set as a counted run, `live` changes not.
   */
  async receive(contacts: readonly WaContact[], kind: 'history' | 'live'): Promise<void> {
    const entries = new Map<string, KnownContact>();
    for (const c of contacts) {
      if (!c.pnJid && !c.lidJid) continue;
      const id = this.deps.resolver.identityOf({ ...(c.pnJid ? { pnJid: c.pnJid } : {}), ...(c.lidJid ? { lidJid: c.lidJid } : {}) });
      const k: KnownContact = { ...(entries.get(id) ?? {}) };
      if (id.endsWith('@s.whatsapp.net')) k.pn = id;
      if (c.lidJid) k.lid = c.lidJid;
      if (c.name) k.name = c.name;
      if (c.notify) k.notify = c.notify;
      entries.set(id, k);
    }
    if (entries.size === 0) return;
    const merged = await this.deps.book.remember(entries);
    void this.exclusive(() => this.apply([...merged], kind === 'history' ? 'counted' : 'uncounted')).catch((err: unknown) =>
      this.deps.log.warn({ err: coerceError(err) }, 'contact names not applied'),
    );
  }

  /** `erga contacts`: every kept contact named and the missing ones created, in the background; the counts are reported at the end. */
  async request(notify?: ImportNotify): Promise<{ started: boolean; contacts: number }> {
    const contacts = await this.deps.book.size();
    if (this.running) return { started: false, contacts };
    this.running = true;
    void this.exclusive(async () => {
      try {
        await this.deps.book.startRun(contacts);
        for await (const page of this.deps.book.all()) {
          if (this.closing) break;
          await this.each(page, true, true);
        }
        await this.finish(notify);
      } finally {
        this.running = false;
      }
    }).catch((err: unknown) => this.deps.log.warn({ err: coerceError(err) }, 'contacts run stopped by an error'));
    return { started: true, contacts };
  }

  private async apply(entries: Array<[string, KnownContact]>, mode: 'counted' | 'uncounted'): Promise<void> {
    if (mode === 'uncounted') return this.each(entries, false, false);
    this.running = true;
    try {
      await this.deps.book.startRun(entries.length);
      await this.each(entries, false, true);
      await this.finish(undefined);
    } finally {
      this.running = false;
    }
  }

  private async finish(notify: ImportNotify | undefined): Promise<void> {
    await this.deps.book.endRun(this.closing ? 'stopped' : 'done');
    const status = await this.deps.book.run();
    if (!status) return;
    this.deps.log.info({ ...status }, 'contacts run done');
    this.deps.report({ status, ...(notify ? { notify } : {}) });
  }

  private async each(entries: Array<[string, KnownContact]>, create: boolean, counted: boolean): Promise<void> {
    for (const [id, k] of entries) {
      if (this.closing) return;
      let outcome: Outcome | 'errors';
      try {
        outcome = await this.one(k, create);
      } catch (err) {
        this.deps.log.warn({ err: coerceError(err), contact: id }, 'could not update a contact from WhatsApp');
        outcome = 'errors';
      }
      if (counted && outcome !== 'absent') await this.deps.book.count(outcome);
    }
  }

  /** One contact: created (when asked and missing), renamed when Ponte's own name or a bare number is there, else left. */
  private async one(k: KnownContact, create: boolean): Promise<Outcome> {
    const name = k.name ?? k.notify;
    const peer = { ...(k.pn ? { pnJid: k.pn } : {}), ...(k.lid ? { lidJid: k.lid } : {}), ...(name ? { pushName: name } : {}) };
    let contact;
    if (create) {
      const ensured = await this.deps.resolver.ensureContact(peer);
      if (ensured.created) return 'created';
      contact = ensured.contact;
    } else {
      contact = await this.deps.resolver.findContact(peer);
      if (!contact) return 'absent';
    }
    if (!name || contact.name === name) return 'skipped';
    const written = await this.deps.book.written(contact.id);
    if (contact.name !== written && !isNumberPlaceholder(contact.name)) return 'skipped';
    await this.deps.client.updateContact(this.deps.accountId, contact.id, { name });
    await this.deps.book.recordWritten(contact.id, name);
    return 'updated';
  }

  /** Stops after the contact in progress. */
  async close(): Promise<void> {
    this.closing = true;
    await this.chain;
  }
}
