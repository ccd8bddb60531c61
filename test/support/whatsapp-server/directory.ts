/** Who is who on the loopback server: simulated peers and linked accounts, found by phone number or LID. */
import { jidDecode } from '@whiskeysockets/baileys';
import { LinkedAccount } from './account.js';
import type { SimulatedPeer } from './peer.js';

/** A WhatsApp user the server knows, with the device a jid names (0 when it names none). */
export type KnownUser =
  | { kind: 'peer'; peer: SimulatedPeer; device: number; addressing: 'pn' | 'lid' }
  | { kind: 'account'; account: LinkedAccount; device: number; addressing: 'pn' | 'lid' };

export class Directory {
  private readonly byPhone = new Map<string, SimulatedPeer | LinkedAccount>();
  private readonly byLid = new Map<string, SimulatedPeer | LinkedAccount>();
  readonly peers: SimulatedPeer[] = [];
  readonly accounts: LinkedAccount[] = [];

  addPeer(peer: SimulatedPeer): void {
    this.claim(peer.phone, peer.lid, peer);
    this.peers.push(peer);
  }

  addAccount(account: LinkedAccount): void {
    this.claim(account.phone, account.lid, account);
    this.accounts.push(account);
  }

  accountByPhone(phone: string): LinkedAccount | undefined {
    return this.accounts.find((a) => a.phone === phone);
  }

  /** The user a PN or LID jid (with or without device) names. */
  lookup(jid: string | undefined): KnownUser | undefined {
    const d = jidDecode(jid);
    if (!d?.user) return undefined;
    const lid = d.server === 'lid';
    if (!lid && d.server !== 's.whatsapp.net' && d.server !== 'c.us') return undefined;
    const who = (lid ? this.byLid : this.byPhone).get(d.user);
    if (!who) return undefined;
    const base = { device: d.device ?? 0, addressing: lid ? ('lid' as const) : ('pn' as const) };
    return who instanceof LinkedAccount ? { kind: 'account', account: who, ...base } : { kind: 'peer', peer: who, ...base };
  }

  /** The user a phone number (`+5511…` or digits) names. */
  lookupPhone(phone: string): KnownUser | undefined {
    return this.lookup(`${phone.replace(/\D/g, '')}@s.whatsapp.net`);
  }

  private claim(phone: string, lid: string, who: SimulatedPeer | LinkedAccount): void {
    if (this.byPhone.has(phone)) throw new Error(`phone ${phone} is already on the server`);
    if (this.byLid.has(lid)) throw new Error(`LID ${lid} is already on the server`);
    this.byPhone.set(phone, who);
    this.byLid.set(lid, who);
  }
}
