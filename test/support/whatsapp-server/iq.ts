/**
 * Answers for the information queries a logged-in rc14 client sends:
 * pre-key count, upload, rotation, digest and bundle fetches (`encrypt`),
 * usync, privacy settings, AB props, block list, `media_conn` and app-state
 * sync (`w:sync:app:state`, for an account with no app-state data). Anything
 * else gets an empty `result`, which rc14 accepts for the calls it makes
 * on the way (passive, ping, presence-related, unified session, …).
 */
import { jidDecode } from '@whiskeysockets/baileys';
import type { BinaryNode } from '@whiskeysockets/baileys';
import type { CompanionDevice, CompanionKeys } from './account.js';
import { child, children, node, readUIntBE, requireChildBytes } from './binary-node.js';
import type { Directory } from './directory.js';
import { MEDIA_AUTH_TOKEN, type MediaHost } from './media-host.js';
import { bundleToUserNode, type PreKeyBundle } from './signal-device.js';
import { answerUsync } from './usync.js';

export interface IqContext {
  directory: Directory;
  media: MediaHost;
  /** The companion the connection logged in as. */
  companion: CompanionDevice | undefined;
  /** Answer of `<iq xmlns=privacy type=get>`, category → value. */
  privacy: Readonly<Record<string, string>>;
}

/** Thrown for a query the server understands but must refuse; the server answers it with `<error>`. */
export class IqError extends Error {
  readonly code = 'IQ_ERROR';
  constructor(
    readonly status: number,
    text: string,
  ) {
    super(text);
  }
}

function readSignedPreKey(skey: BinaryNode | undefined): CompanionKeys['signedPreKey'] {
  return {
    keyId: readUIntBE(requireChildBytes(skey, 'id')),
    publicKey: requireChildBytes(skey, 'value'),
    signature: requireChildBytes(skey, 'signature'),
  };
}

function recordUpload(iq: BinaryNode, companion: CompanionDevice | undefined): void {
  if (!companion) throw new IqError(401, 'not logged in');
  const keys: CompanionKeys = {
    registrationId: readUIntBE(requireChildBytes(iq, 'registration')),
    identityKey: requireChildBytes(iq, 'identity'),
    signedPreKey: readSignedPreKey(child(iq, 'skey')),
  };
  const preKeys = children(child(iq, 'list'), 'key').map((k) => ({ keyId: readUIntBE(requireChildBytes(k, 'id')), publicKey: requireChildBytes(k, 'value') }));
  companion.recordUpload(keys, preKeys);
}

/** A bundle for the device a jid names, or undefined when nobody has it. */
function bundleFor(jid: string, directory: Directory): PreKeyBundle | undefined {
  const user = directory.lookup(jid);
  if (!user) return undefined;
  if (user.kind === 'peer') return user.device === 0 ? user.peer.device.freshBundle() : undefined;
  if (user.device === 0) return user.account.primary.freshBundle();
  return user.account.companions.get(user.device)?.takeBundle();
}

function answerKeyFetch(iq: BinaryNode, directory: Directory): BinaryNode[] {
  const users = children(child(iq, 'key'), 'user').map((u) => {
    const jid = u.attrs.jid ?? '';
    const bundle = jidDecode(jid) ? bundleFor(jid, directory) : undefined;
    return bundle ? bundleToUserNode(jid, bundle) : node('user', { jid }, [node('error', { code: '404', text: 'item-not-found' })]);
  });
  return [node('list', {}, users)];
}

function answerEncrypt(iq: BinaryNode, ctx: IqContext): BinaryNode[] | undefined {
  const first = child(iq);
  if (iq.attrs.type === 'get') {
    if (first?.tag === 'count') return [node('count', { value: String(ctx.companion?.preKeys.length ?? 0) })];
    if (first?.tag === 'digest') return [node('digest', {})];
    if (first?.tag === 'key') return answerKeyFetch(iq, ctx.directory);
    return undefined;
  }
  if (child(iq, 'list')) recordUpload(iq, ctx.companion);
  if (first?.tag === 'rotate' && ctx.companion) ctx.companion.keys = { ...ctx.companion.keys, signedPreKey: readSignedPreKey(child(first, 'skey')) };
  return undefined;
}

/**
 * `<iq xmlns=w:sync:app:state><sync><collection name version return_snapshot>…`:
 * what WhatsApp answers for an account without app-state data. Each collection
 * comes back at the version asked for, with no snapshot, no patches and
 * `has_more_patches=false`, so rc14 counts it as synced. Patches a client
 * sends (`chatModify`, which rc14 only does once the phone has shared an
 * app-state key, and this phone shares none) would be answered the same way
 * and not kept.
 */
function answerAppStateSync(iq: BinaryNode): BinaryNode[] {
  const sync = child(iq, 'sync');
  if (!sync) throw new IqError(400, 'app-state sync without <sync>');
  const collections = children(sync, 'collection').map((c) => {
    if (!c.attrs.name) throw new IqError(400, 'app-state collection without a name');
    return node('collection', { name: c.attrs.name, version: c.attrs.version ?? '0', has_more_patches: 'false' });
  });
  return [node('sync', {}, collections)];
}

/** The content of the `result` for an information query; undefined for an empty one. */
export function answerInfoIq(iq: BinaryNode, ctx: IqContext): BinaryNode[] | undefined {
  const first = child(iq);
  switch (iq.attrs.xmlns) {
    case 'encrypt':
      return answerEncrypt(iq, ctx);
    case 'usync':
      return answerUsync(iq, ctx.directory);
    case 'privacy':
      if (iq.attrs.type === 'get' && first?.tag === 'privacy') {
        return [node('privacy', {}, Object.entries(ctx.privacy).map(([name, value]) => node('category', { name, value })))];
      }
      return undefined;
    case 'abt':
      return [node('props', { protocol: '1' })];
    case 'blocklist':
      return iq.attrs.type === 'get' ? [node('list', {})] : undefined;
    case 'w:sync:app:state':
      return answerAppStateSync(iq);
    case 'w:m':
      return [
        node('media_conn', { auth: MEDIA_AUTH_TOKEN, ttl: '3600', auth_ttl: '3600', max_buckets: '12' }, [
          node('host', { hostname: ctx.media.uploadHost, maxContentLengthBytes: String(100 * 1024 * 1024) }),
        ]),
      ];
    default:
      return undefined;
  }
}
