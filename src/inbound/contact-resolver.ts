/** Finds or creates the Chatwoot contact and conversation of a WhatsApp chat, with its Redis cache. */
import type { Redis } from 'ioredis';
import type { ChatwootClientLike, CwContact, CwConversation, CwFilterClause } from '../chatwoot/types.js';
import { ChatwootNotFoundError, ChatwootUnprocessableError } from '../chatwoot/errors.js';
import type { InboundMessage, WaPerson } from '../model/inbound.js';
import type { Logger } from '../observability/logger.js';
import { brazilianVariants, canonicalBrazilian, digitsOf } from '../lib/phone.js';
import { withLocks } from '../redis/lock.js';
import type { ContactBook } from './contact-book.js';
import { RETENTION_S, type RedisKeys } from '../redis/keys.js';

/** Where one chat's messages go in Chatwoot, as cached per chat. */
export interface ChatTarget {
  conversationId: number;
  contactId: number;
  sourceId: string;
  /** The last Chatwoot message Ponte created in this conversation (for lost-response checks). */
  lastMessageId?: number;
  /** A WhatsApp id whose create was sent but not confirmed. */
  inflight?: string;
  /** The person's LID and phone-number JID as last recorded for the chat. */
  lid?: string;
  pn?: string;
}

/** A chat's target from its cache hash, when the hash holds a whole one. */
function targetOf(h: Readonly<Record<string, string>>): ChatTarget | undefined {
  if (!h.conversationId || !h.contactId || !h.sourceId) return undefined;
  return {
    conversationId: Number(h.conversationId),
    contactId: Number(h.contactId),
    sourceId: h.sourceId,
    ...(h.lastMessageId ? { lastMessageId: Number(h.lastMessageId) } : {}),
    ...(h.inflight ? { inflight: h.inflight } : {}),
    ...(h.lid ? { lid: h.lid } : {}),
    ...(h.pn ? { pn: h.pn } : {}),
  };
}

export interface InstanceTarget {
  instanceKey: string;
  accountId: number;
  inboxId: number;
}

export interface ContactResolverDeps {
  client: ChatwootClientLike;
  redis: Redis;
  keys: RedisKeys;
  instance: InstanceTarget;
  log: Logger;
  /** A group's subject, to name its contact (the JID's number otherwise). */
  groupSubject?: (jid: string) => Promise<string | undefined>;
  /** The names WhatsApp knows for the number's contacts, and the names Ponte wrote (a new contact takes the saved name). */
  book?: ContactBook;
}

/** A person's addresses in the forms Chatwoot records: canonical PN JID and phone, LID JID. */
interface Addresses {
  pnJid?: string;
  phoneE164?: string;
  /** Every phone form of the number (Brazilian mobiles with and without the ninth digit). */
  phoneVariants: string[];
  lidJid?: string;
  /** The identifier Chatwoot keeps: PN JID when known, else LID JID, else the group JID (DESIGN.md, Decisions 10). */
  identifier: string;
  name: string;
}

/**
 * Finds or creates the Chatwoot contact, contact inbox and conversation of a
 * chat, and caches them in Redis (`chat:<instance>:<chatId>`).
 *
 * The cache is only a cache: Chatwoot is the source of truth. A cold chat is
 * resolved under locks on each of the person's addresses, so two chats of the
 * same person (one by LID, one by number) never create two contacts; a 422 on
 * create is answered by finding the existing contact; a create whose answer
 * was lost is found by the same lookup on the next attempt. One person is one
 * contact per account: a person first seen by LID and later by number keeps
 * the contact and gains the number; two contacts found for one person are
 * merged.
 */
export class ContactResolver {
  constructor(private readonly deps: ContactResolverDeps) {}

  private chatKey(chatId: string): string {
    return this.deps.keys.chat(this.deps.instance.instanceKey, chatId);
  }

  /** The cached target of a chat, if any (one Redis read: the steady state). */
  async cached(chatId: string): Promise<ChatTarget | undefined> {
    return targetOf(await this.deps.redis.hgetall(this.chatKey(chatId)));
  }

  /** Drops the cached target (Chatwoot answered 404 for it), so the next message resolves again. */
  async forget(chatId: string): Promise<void> {
    await this.deps.redis.hdel(this.chatKey(chatId), 'conversationId', 'contactId', 'sourceId', 'lastMessageId');
  }

  /** A group was renamed on WhatsApp: its contact takes the new subject (when the group is known here). */
  async renameGroup(groupJid: string, subject: string): Promise<void> {
    const target = await this.cached(groupJid);
    if (!target) return;
    await this.deps.client.updateContact(this.deps.instance.accountId, target.contactId, { name: subject });
    await this.deps.book?.recordWritten(target.contactId, subject);
  }

  /** The identifier a person's contact carries in Chatwoot (canonical phone-number JID when known, else the LID). */
  identityOf(peer: WaPerson): string {
    return personAddresses(peer).identifier;
  }

  /**
   * A person's contact in this account, from the cache or an exact lookup in
   * Chatwoot (duplicates of one person merged, as on a cold chat); never
   * creates one.
   */
  async findContact(peer: WaPerson): Promise<CwContact | undefined> {
    const a = personAddresses(peer);
    const contact = await this.existing(a);
    if (contact) await this.cacheAliases(a, contact.id);
    return contact;
  }

  /**
   * A person's contact with its contact inbox in this instance's inbox,
   * created when the person has none (no conversation is opened), under the
   * person's locks as on a cold chat; `created` when this call made it.
   */
  async ensureContact(peer: WaPerson): Promise<{ contact: CwContact; created: boolean }> {
    const a = personAddresses(peer);
    return withLocks(this.deps.redis, this.personLocks(a), async () => {
      const found = await this.existing(a);
      let contact = found ?? (await this.lookupOrCreate(a));
      contact = await this.completeIdentity(contact, a);
      await this.cacheAliases(a, contact.id);
      await this.ensureContactInbox(contact, a);
      return { contact, created: found === undefined };
    });
  }

  private personLocks(a: Addresses): string[] {
    const { accountId } = this.deps.instance;
    return [a.pnJid, a.lidJid, a.identifier].filter((x): x is string => x !== undefined).map((x) => this.deps.keys.lock(`person:${accountId}:${x}`));
  }

  private async cacheAliases(a: Addresses, contactId: number): Promise<void> {
    const batch = this.deps.redis.multi();
    for (const k of this.aliasKeys(a)) batch.set(k, String(contactId), 'EX', RETENTION_S);
    await batch.exec();
  }

  /** The contact a person's cached addresses point at, when Chatwoot still has it. */
  private async fromAliases(a: Addresses): Promise<CwContact | undefined> {
    const known = (await this.deps.redis.mget(...this.aliasKeys(a))).filter((v): v is string => v !== null).map(Number);
    for (const id of new Set(known)) {
      try {
        return await this.deps.client.getContact(this.deps.instance.accountId, id);
      } catch (err) {
        if (!(err instanceof ChatwootNotFoundError)) throw err;
      }
    }
    return undefined;
  }

  /** The person's existing contact: cached, found by phone or identifier, or owning the source id in the inbox. */
  private async existing(a: Addresses): Promise<CwContact | undefined> {
    const cached = await this.fromAliases(a);
    if (cached) return cached;
    const found = await this.lookup(a);
    if (found.length > 0) return this.mergeAll(found);
    return (await this.deps.client.findContactBySourceId(this.deps.instance.accountId, this.deps.instance.inboxId, a.identifier)) ?? undefined;
  }

  async markInflight(chatId: string, waId: string): Promise<void> {
    await this.deps.redis.hset(this.chatKey(chatId), 'inflight', waId);
  }


  /**
   * The chat's target: from the cache (`cache` when the caller read it
   * already), or resolved against Chatwoot under the person's locks.
   */
  async resolve(chatId: string, message: InboundMessage, cache?: Readonly<Record<string, string>>): Promise<ChatTarget> {
    const hit = cache ? targetOf(cache) : await this.cached(chatId);
    if (hit) {
      await this.rememberAddresses(chatId, hit, message);
      return hit;
    }
    const addresses = addressesOf(message);
    if (message.chatKind === 'group' && this.deps.groupSubject) {
      const subject = await this.deps.groupSubject(message.chatId).catch(() => undefined);
      if (subject) addresses.name = subject;
    }
    // The name the number's owner saved for the person comes before the one they set themselves.
    const saved = message.chatKind === 'direct' ? await this.deps.book?.savedName(addresses.identifier) : undefined;
    if (saved) addresses.name = saved;
    return this.resolveLocked(chatId, addresses);
  }

  /**
   * The target of a direct chat with `peer` that Ponte opens itself (the
   * send API): the cached one, or resolved as a cold chat is, under the
   * same locks and identity rules, so a person is one contact whoever wrote
   * first.
   */
  async resolvePerson(chatId: string, peer: WaPerson): Promise<ChatTarget> {
    const hit = await this.cached(chatId);
    if (hit) return hit;
    const addresses = personAddresses(peer);
    const saved = await this.deps.book?.savedName(addresses.identifier);
    if (saved) addresses.name = saved;
    return this.resolveLocked(chatId, addresses);
  }

  /** Resolves a cold chat under the person's locks and caches its target. */
  private resolveLocked(chatId: string, addresses: Addresses): Promise<ChatTarget> {
    const { accountId } = this.deps.instance;
    const lockKeys = [addresses.pnJid, addresses.lidJid, addresses.identifier]
      .filter((a): a is string => a !== undefined)
      .map((a) => this.deps.keys.lock(`person:${accountId}:${a}`));
    return withLocks(this.deps.redis, lockKeys, async () => {
      const again = await this.cached(chatId);
      if (again) return again;
      const target = await this.resolveCold(addresses);
      await this.deps.redis
        .multi()
        .hset(this.chatKey(chatId), {
          conversationId: String(target.conversationId),
          contactId: String(target.contactId),
          sourceId: target.sourceId,
          ...(addresses.lidJid ? { lid: addresses.lidJid } : {}),
          ...(addresses.pnJid ? { pn: addresses.pnJid } : {}),
        })
        .expire(this.chatKey(chatId), RETENTION_S)
        .exec();
      return target;
    });
  }

  /**
   * A chat known by one address now shows another (WhatsApp moved the person
   * to a LID, or revealed the number of someone known by LID): the new
   * address is recorded once. A LID becomes an address of the contact (a
   * later message by LID alone finds it even when the chat's own alias is
   * gone); a number is written to the contact, as for a cold chat.
   */
  private async rememberAddresses(chatId: string, target: ChatTarget, message: InboundMessage): Promise<void> {
    if (message.chatKind !== 'direct') return;
    const a = personAddresses(message.peer);
    const newLid = a.lidJid && target.lid !== a.lidJid ? a.lidJid : undefined;
    const newPn = a.pnJid && target.pn !== a.pnJid ? a.pnJid : undefined;
    if (!newLid && !newPn) return;
    const { accountId } = this.deps.instance;
    if (newPn) {
      const lockKeys = [a.pnJid, a.lidJid].filter((x): x is string => x !== undefined).map((x) => this.deps.keys.lock(`person:${accountId}:${x}`));
      await withLocks(this.deps.redis, lockKeys, async () => {
        const contact = await this.completeIdentity(await this.deps.client.getContact(accountId, target.contactId), a);
        const batch = this.deps.redis.multi();
        for (const k of this.aliasKeys(a)) batch.set(k, String(contact.id), 'EX', RETENTION_S);
        await batch.exec();
      });
    } else if (newLid) {
      await this.deps.redis.set(this.deps.keys.contactAlias(accountId, newLid), String(target.contactId), 'EX', RETENTION_S);
    }
    if (newLid) target.lid = newLid;
    if (newPn) target.pn = newPn;
    await this.deps.redis.hset(this.chatKey(chatId), { ...(target.lid ? { lid: target.lid } : {}), ...(target.pn ? { pn: target.pn } : {}) });
  }

  private async resolveCold(a: Addresses): Promise<ChatTarget> {
    const contact = await this.findOrCreateContact(a);
    const sourceId = await this.ensureContactInbox(contact, a);
    const conversationId = await this.findOrCreateConversation(contact.id, sourceId);
    this.deps.log.debug({ contactId: contact.id, conversationId }, 'chat resolved');
    return { conversationId, contactId: contact.id, sourceId };
  }

  private aliasKeys(a: Addresses): string[] {
    const { accountId } = this.deps.instance;
    const jids = new Set<string>([a.identifier]);
    if (a.lidJid) jids.add(a.lidJid);
    for (const p of a.phoneVariants) jids.add(`${p.slice(1)}@s.whatsapp.net`);
    return [...jids].map((j) => this.deps.keys.contactAlias(accountId, j));
  }

  private async findOrCreateContact(a: Addresses): Promise<CwContact> {
    let contact = (await this.fromAliases(a)) ?? (await this.lookupOrCreate(a));
    contact = await this.completeIdentity(contact, a);
    await this.cacheAliases(a, contact.id);
    return contact;
  }

  /** Exact lookup by every phone form and identifier; merges duplicates; creates when nobody matches. */
  private async lookupOrCreate(a: Addresses): Promise<CwContact> {
    const found = await this.lookup(a);
    if (found.length > 0) return this.mergeAll(found);
    // A contact inbox with this source id may belong to a contact whose
    // identifier differs (made by hand or another bridge); creating another
    // would fail inside Chatwoot with a 500.
    const owner = await this.deps.client.findContactBySourceId(this.deps.instance.accountId, this.deps.instance.inboxId, a.identifier);
    if (owner) return owner;
    try {
      const { contact } = await this.deps.client.createContact(this.deps.instance.accountId, {
        inbox_id: this.deps.instance.inboxId,
        source_id: a.identifier,
        name: a.name,
        identifier: a.identifier,
        ...(a.phoneE164 ? { phone_number: a.phoneE164 } : {}),
        ...(a.lidJid ? { additional_attributes: { wa_lid: a.lidJid } } : {}),
      });
      await this.deps.book?.recordWritten(contact.id, a.name);
      return contact;
    } catch (err) {
      // Someone holds this phone or identifier already (created by an earlier
      // attempt whose answer was lost, or by hand): find and use that contact.
      if (!(err instanceof ChatwootUnprocessableError)) throw err;
      const again = await this.lookup(a);
      if (again.length === 0) throw err;
      return this.mergeAll(again);
    }
  }

  /**
   * Exact lookup, one clause per value joined by OR: Chatwoot's contact
   * filter compares `equal_to` with the first value only, and (in the code
   * we read) prefixes phone values with `+` itself, so each phone goes both
   * as `+<digits>` and as `<digits>` to match either way.
   */
  private async lookup(a: Addresses): Promise<CwContact[]> {
    const identifiers = new Set<string>([a.identifier]);
    if (a.lidJid) identifiers.add(a.lidJid);
    for (const p of a.phoneVariants) identifiers.add(`${p.slice(1)}@s.whatsapp.net`);
    const clauses: CwFilterClause[] = [];
    for (const p of a.phoneVariants) {
      clauses.push({ attribute_key: 'phone_number', filter_operator: 'equal_to', values: [p], query_operator: 'OR' });
      clauses.push({ attribute_key: 'phone_number', filter_operator: 'equal_to', values: [p.slice(1)], query_operator: 'OR' });
    }
    for (const id of identifiers) clauses.push({ attribute_key: 'identifier', filter_operator: 'equal_to', values: [id], query_operator: 'OR' });
    delete clauses[clauses.length - 1]!.query_operator;
    return this.deps.client.filterContacts(this.deps.instance.accountId, clauses);
  }

  /** One person found as several contacts (LID/PN or ninth-digit splits): merge into the one holding the number. */
  private async mergeAll(found: CwContact[]): Promise<CwContact> {
    const sorted = [...found].sort((x, y) => Number(y.phone_number !== null) - Number(x.phone_number !== null) || x.id - y.id);
    const base = sorted[0]!;
    for (const mergee of sorted.slice(1)) {
      this.deps.log.warn({ contactId: base.id, mergeeId: mergee.id }, 'merging duplicate contacts of one person');
      await this.deps.client.mergeContacts(this.deps.instance.accountId, base.id, mergee.id);
    }
    return sorted.length > 1 ? this.deps.client.getContact(this.deps.instance.accountId, base.id) : base;
  }

  /** A contact known only by LID gains the number and the PN identifier once WhatsApp reveals them. */
  private async completeIdentity(contact: CwContact, a: Addresses): Promise<CwContact> {
    if (!a.phoneE164 || contact.phone_number) return contact;
    const { client, instance } = this.deps;
    try {
      return await client.updateContact(instance.accountId, contact.id, {
        phone_number: a.phoneE164,
        identifier: a.identifier,
        additional_attributes: a.lidJid ? { wa_lid: a.lidJid } : {},
      });
    } catch (err) {
      if (!(err instanceof ChatwootUnprocessableError)) throw err;
      // Another contact holds the number: it is the same person, merge the two.
      const others = (await this.lookup(a)).filter((c) => c.id !== contact.id);
      if (others.length === 0) throw err;
      return this.mergeAll([...others, contact]);
    }
  }

  /** The contact's source id in this inbox, creating the contact inbox when missing (idempotent in Chatwoot). */
  private async ensureContactInbox(contact: CwContact, a: Addresses): Promise<string> {
    const { client, instance } = this.deps;
    const existing = contact.contact_inboxes?.find((ci) => ci.inbox.id === instance.inboxId);
    if (existing) return existing.source_id;
    const fresh = await client.getContact(instance.accountId, contact.id);
    const again = fresh.contact_inboxes?.find((ci) => ci.inbox.id === instance.inboxId);
    if (again) return again.source_id;
    // Chatwoot answers a 500 when another contact owns this source id in the
    // inbox (made by hand or by another bridge): that contact is the same
    // person, so it is merged into this one and its contact inbox kept.
    const owner = await client.findContactBySourceId(instance.accountId, instance.inboxId, a.identifier);
    if (owner && owner.id !== contact.id) {
      this.deps.log.warn({ contactId: contact.id, mergeeId: owner.id }, 'another contact holds this number in the inbox: merging');
      await client.mergeContacts(instance.accountId, contact.id, owner.id);
      return a.identifier;
    }
    if (owner) return a.identifier;
    const created = await client.createContactInbox(instance.accountId, contact.id, instance.inboxId, a.identifier);
    return created.source_id;
  }

  /**
   * The contact's latest conversation in this inbox that is not resolved, or
   * a new one created with the contact inbox's source id (never without it:
   * Chatwoot would make a second contact inbox).
   */
  private async findOrCreateConversation(contactId: number, sourceId: string): Promise<number> {
    const { client, instance } = this.deps;
    const conversations = await client.listContactConversations(instance.accountId, contactId);
    const open = pickConversation(conversations, instance.inboxId);
    if (open) return open.id;
    const created = await client.createConversation(instance.accountId, {
      source_id: sourceId,
      inbox_id: instance.inboxId,
      contact_id: contactId,
      status: 'open',
    });
    return created.id;
  }
}

function pickConversation(conversations: CwConversation[], inboxId: number): CwConversation | undefined {
  return conversations
    .filter((c) => c.inbox_id === inboxId && c.status !== 'resolved')
    .sort((x, y) => (y.last_activity_at ?? 0) - (x.last_activity_at ?? 0) || y.id - x.id)[0];
}

/** The person (or group) a message's chat belongs to, in Chatwoot's terms. */
export function addressesOf(message: InboundMessage): Addresses {
  if (message.chatKind === 'group') {
    return { identifier: message.chatId, phoneVariants: [], name: message.chatId.split('@')[0] ?? message.chatId };
  }
  return personAddresses(message.peer);
}

function personAddresses(peer: WaPerson): Addresses {
  const digits = peer.pnJid ? digitsOf(peer.pnJid) : undefined;
  const canonical = digits ? canonicalBrazilian(digits) : undefined;
  const pnJid = canonical ? `${canonical}@s.whatsapp.net` : undefined;
  const phoneVariants = digits ? [...new Set([canonical!, ...brazilianVariants(digits)])].map((d) => `+${d}`) : [];
  const identifier = pnJid ?? peer.lidJid;
  if (!identifier) throw new TypeError('a direct chat needs a phone number or a LID');
  const name = peer.pushName?.trim() || (canonical ? `+${canonical}` : identifier.split('@')[0]!);
  return {
    ...(pnJid ? { pnJid, phoneE164: `+${canonical}` } : {}),
    ...(peer.lidJid ? { lidJid: peer.lidJid } : {}),
    phoneVariants,
    identifier,
    name,
  };
}
