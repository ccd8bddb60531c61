/**
 * Linking a registering connection to an account, from the phone's side:
 *
 * - by QR: `scanQr` checks the QR against the connection that got its ref
 *   and sends `pair-success` signed with the QR's ADV secret;
 * - by pairing code: the client's `companion_hello` is answered with a ref
 *   and waits; `enterPairingCode` sends the phone's `primary_hello`; the
 *   client's `companion_finish` yields the ADV secret → `pair-success`.
 *
 * `companion_reg_refresh` retires the ADV secret of the QR shown (as the
 * phone then refuses it). Either way the client answers `pair-device-sign`, the companion counts as
 * paired, and (as on WhatsApp) the server sends `<stream:error code=515>`.
 *
 * When WhatsApp wants a passkey for the link (`LinkOptions.passkey`), the
 * companion gets `<notification type="passkey_prologue_request">` (`passkey.ts`)
 * where it would have got `pair-success` (on the scan, or after
 * `companion_finish`), and the link stays pending: rc14 implements no
 * passkey ceremony.
 */
import { randomBytes } from 'node:crypto';
import { jidDecode } from '@whiskeysockets/baileys';
import type { BinaryNode } from '@whiskeysockets/baileys';
import type { CompanionDevice, LinkedAccount } from './account.js';
import type { AccountHistory } from './history.js';
import { bytesOf, child, node, requireChildBytes, unixSeconds } from './binary-node.js';
import type { ClientConnection } from './connection.js';
import { Inbox } from './inbox.js';
import { IqError } from './iq.js';
import { type CompanionQr, PairingCodeError, PairingCodeExchange, pairSuccessNode, parseQr, signCompanionIdentity } from './pairing.js';
import { newPasskeyRequestOptions, passkeyPrologueRequest, type PasskeyRequest, PasskeyRequiredError } from './passkey.js';
import type { IdentityOptions } from './types.js';

export interface LinkingDeps {
  /** The server's connections, newest last. */
  readonly connections: readonly ClientConnection[];
  /** The account with this phone number, created when new. */
  ensureAccount(identity: IdentityOptions): LinkedAccount;
  /** A fresh id for a server-initiated stanza. */
  tag(): string;
  /** Send `<stream:error code=515>` once a pairing is confirmed. */
  readonly restartAfterPairing: boolean;
}

const digits = (phone: string) => phone.replace(/^\+/, '');

/** How the phone links one companion. */
export interface LinkOptions {
  /** What the phone sends the companion at its first login; sets the account's `history` (see `AccountHistory`). */
  history?: AccountHistory | false;
  /**
   * WhatsApp asks for a passkey before linking: the companion gets a
   * `passkey_prologue_request` notification instead of `pair-success`, and the
   * link call rejects with `PasskeyRequiredError`. Default: whether
   * `requirePasskey(phone)` was called for the number.
   */
  passkey?: boolean;
}

export class Linking {
  /** Pairing-code requests (`companion_hello`), waiting for `enterPairingCode`. */
  readonly pairingCodeRequests = new Inbox<{ connection: ClientConnection; phone: string }>('pairing-code requests');
  /** Companions whose pairing the client confirmed (`pair-device-sign`). */
  readonly pairings = new Inbox<CompanionDevice>('pairings');
  /** Passkey ceremonies asked for instead of a pairing. */
  readonly passkeyRequests = new Inbox<PasskeyRequest>('passkey requests');
  /** Phone numbers (digits) whose links demand a passkey unless `LinkOptions.passkey` says otherwise. */
  readonly passkeyPhones = new Set<string>();
  private readonly linkOptions = new WeakMap<ClientConnection, LinkOptions>();
  private readonly waits = new Map<ClientConnection, { resolve: (c: CompanionDevice) => void; reject: (e: Error) => void }>();

  constructor(private readonly deps: LinkingDeps) {}

  async scanQr(qr: string, identity: IdentityOptions, options: LinkOptions = {}): Promise<CompanionDevice> {
    const { parsed, conn } = this.connectionOf(qr);
    if (conn.retiredAdvSecrets.has(parsed.advSecret.toString('base64'))) throw new Error("the phone can't link this QR: its ADV secret was retired by companion_reg_refresh");
    const account = this.accountFor(identity, options);
    if (this.wantsPasskey(account, options)) throw new PasskeyRequiredError(this.demandPasskey(conn, account, 'qr'));
    const confirmed = this.confirmation(conn);
    this.sendPairSuccess(conn, account, parsed.advSecret, parsed.identityKey);
    return confirmed;
  }

  refreshCompanionRegistration(qr: string): void {
    const { parsed, conn } = this.connectionOf(qr);
    conn.retiredAdvSecrets.add(parsed.advSecret.toString('base64'));
    conn.send(
      node('notification', { from: 's.whatsapp.net', type: 'companion_reg_refresh', id: this.deps.tag(), t: unixSeconds() }, [
        node('companion_reg_refresh', {}),
      ]),
    );
  }

  async enterPairingCode(code: string, identity: Partial<IdentityOptions>, options: LinkOptions = {}): Promise<CompanionDevice> {
    const phone = identity.phone && digits(identity.phone);
    // requestPairingCode does not wait for the server, so its request may still be on the way.
    const { connection: conn } = await this.pairingCodeRequests.waitFor(
      ({ connection: c }) => c.state === 'open' && c.linkCode !== undefined && !c.linkCode.exchange && (!phone || c.linkCode.phone === phone),
    );
    const linkCode = conn.linkCode;
    if (!linkCode) throw new Error('unreachable: a pairing-code request without its state');
    const account = this.accountFor({ ...identity, phone: linkCode.phone }, options);
    const exchange = new PairingCodeExchange(linkCode.wrappedCompanionEphemeral, account.primary.identityKey);
    const wrapped = await exchange.confirm(code.replace(/-/g, ''));
    linkCode.exchange = exchange;
    this.linkOptions.set(conn, options);
    const confirmed = this.confirmation(conn);
    conn.send(
      node('notification', { from: 's.whatsapp.net', type: 'link_code_companion_reg', id: this.deps.tag(), t: unixSeconds() }, [
        node('link_code_companion_reg', { stage: 'primary_hello' }, [
          node('link_code_pairing_ref', {}, Buffer.from(linkCode.ref)),
          node('primary_identity_pub', {}, account.primary.identityKey.public),
          node('link_code_pairing_wrapped_primary_ephemeral_pub', {}, wrapped),
        ]),
      ]),
    );
    return confirmed;
  }

  /** `<iq xmlns=md><link_code_companion_reg stage=…>` from the client; throws `IqError` to refuse it. */
  onLinkCodeIq(conn: ClientConnection, iq: BinaryNode): void {
    const reg = child(iq, 'link_code_companion_reg');
    const answer = (content?: BinaryNode[]) => conn.send(node('iq', { from: 's.whatsapp.net', type: 'result', id: iq.attrs.id }, content));
    if (reg?.attrs.stage === 'companion_hello') {
      const phone = jidDecode(reg.attrs.jid)?.user;
      if (!phone) throw new IqError(400, 'companion_hello without a phone jid');
      const ref = `2@${randomBytes(16).toString('base64')}`;
      conn.linkCode = { phone, ref, wrappedCompanionEphemeral: requireChildBytes(reg, 'link_code_pairing_wrapped_companion_ephemeral_pub') };
      answer([node('link_code_companion_reg', {}, [node('link_code_pairing_ref', {}, Buffer.from(ref))])]);
      this.pairingCodeRequests.push({ connection: conn, phone });
      return;
    }
    if (reg?.attrs.stage !== 'companion_finish') throw new IqError(400, `unknown link_code_companion_reg stage ${reg?.attrs.stage}`);
    const linkCode = conn.linkCode;
    if (!linkCode?.exchange) throw new IqError(400, 'companion_finish before the phone confirmed the code');
    if (bytesOf(child(reg, 'link_code_pairing_ref'))?.toString() !== linkCode.ref) throw new IqError(400, 'companion_finish for another ref');
    const companionIdentity = requireChildBytes(reg, 'companion_identity_public');
    let advSecret: Buffer;
    try {
      advSecret = linkCode.exchange.finish(requireChildBytes(reg, 'link_code_pairing_wrapped_key_bundle'), companionIdentity);
    } catch (err) {
      if (!(err instanceof PairingCodeError)) throw err;
      this.fail(conn, err);
      throw new IqError(401, err.message);
    }
    answer();
    const account = this.deps.ensureAccount({ phone: linkCode.phone });
    if (this.wantsPasskey(account, this.linkOptions.get(conn) ?? {})) {
      // As WhatsApp does for such numbers: the code checked out, but the phone asks for a passkey before linking.
      this.fail(conn, new PasskeyRequiredError(this.demandPasskey(conn, account, 'pairing-code')));
      return;
    }
    this.sendPairSuccess(conn, account, advSecret, companionIdentity);
  }

  /** The client's `pair-device-sign` answer to `pair-success`. */
  onPairDeviceSign(conn: ClientConnection): void {
    const companion = conn.pairingCompanion;
    if (!companion) return;
    const wait = this.waits.get(conn);
    this.waits.delete(conn);
    this.pairings.push(companion);
    wait?.resolve(companion);
    if (this.deps.restartAfterPairing) conn.streamError(515);
  }

  onClose(conn: ClientConnection): void {
    this.fail(conn, new Error(`connection ${conn.id} closed before the client confirmed its pairing`));
  }

  close(): void {
    for (const w of this.waits.values()) w.reject(new Error('server closed'));
    this.waits.clear();
    this.pairingCodeRequests.close();
    this.pairings.close();
    this.passkeyRequests.close();
  }

  /** The account being linked, with the history the link asks for. */
  private accountFor(identity: IdentityOptions, options: LinkOptions): LinkedAccount {
    const account = this.deps.ensureAccount(identity);
    if (options.history !== undefined) account.history = options.history;
    return account;
  }

  private wantsPasskey(account: LinkedAccount, options: LinkOptions): boolean {
    return options.passkey ?? this.passkeyPhones.has(account.phone);
  }

  /** Sends the passkey notification (`passkey.ts`) instead of `pair-success` and records the request. */
  private demandPasskey(conn: ClientConnection, account: LinkedAccount, via: PasskeyRequest['via']): PasskeyRequest {
    const requestOptions = newPasskeyRequestOptions();
    const notificationId = this.deps.tag();
    conn.send(passkeyPrologueRequest(notificationId, requestOptions));
    const request: PasskeyRequest = { connection: conn, phone: account.phone, via, notificationId, requestOptions };
    this.passkeyRequests.push(request);
    return request;
  }

  /** The open registration that got this QR's ref; its Noise key must be the one the QR names. */
  private connectionOf(qr: string): { parsed: CompanionQr; conn: ClientConnection } {
    const parsed = parseQr(qr);
    const conn = this.deps.connections.find((c) => c.state === 'open' && c.qrRefs.includes(parsed.ref));
    if (!conn) throw new Error('no open connection shows this QR');
    if (!conn.clientStaticKey?.equals(parsed.noiseKey)) throw new Error('the QR names another Noise key than its connection used');
    return { parsed, conn };
  }

  private sendPairSuccess(conn: ClientConnection, account: LinkedAccount, advSecret: Buffer, companionIdentityKey: Buffer): void {
    if (!conn.registration) throw new Error('pairing a connection that did not register');
    if (!conn.registration.identityKey.equals(companionIdentityKey)) throw new Error('the companion identity differs from the one it registered');
    if (conn.pairingCompanion) throw new Error(`connection ${conn.id} is already paired`);
    const companion = account.addCompanion(conn.registration);
    conn.pairingCompanion = companion;
    const deviceIdentity = signCompanionIdentity({ companionIdentityKey, advSecret, accountKey: account.primary.identityKey, keyIndex: companion.keyIndex });
    conn.send(pairSuccessNode({ id: this.deps.tag(), deviceIdentity, deviceJid: companion.pnJid, lidJid: companion.lidJid, platform: 'android' }));
  }

  /** Resolves when the client answers `pair-success` with `pair-device-sign`; rejects if it closes or the code was wrong. */
  private confirmation(conn: ClientConnection): Promise<CompanionDevice> {
    return new Promise<CompanionDevice>((resolve, reject) => {
      this.waits.set(conn, { resolve, reject });
    });
  }

  /** Rejects a pending pairing and forgets the companion it announced. */
  private fail(conn: ClientConnection, error: Error): void {
    const wait = this.waits.get(conn);
    if (!wait) return;
    this.waits.delete(conn);
    if (conn.pairingCompanion) conn.pairingCompanion.account.companions.delete(conn.pairingCompanion.deviceId);
    wait.reject(error);
  }
}
