/**
 * Answers `<iq xmlns=usync>` queries the way rc14 needs them: device lists
 * (`devices`), PN→LID lookups (`lid`) and registration checks (`contact`,
 * used by `onWhatsApp`). Users the server does not know get an empty device
 * list and `contact type=out`.
 */
import type { BinaryNode } from '@whiskeysockets/baileys';
import { pnJid } from './account.js';
import { bytesOf, child, children, node, unixSeconds } from './binary-node.js';
import type { Directory, KnownUser } from './directory.js';

function devicesNode(user: KnownUser | undefined): BinaryNode {
  // Device 0 only: the peer's phone, or the account's own primary phone. A
  // non-zero device would also need a key-index for rc14 to address it.
  const list = user ? [node('device', { id: '0' })] : [];
  return node('devices', {}, [node('device-list', {}, list), node('key-index-list', { ts: unixSeconds() })]);
}

function lidNode(user: KnownUser | undefined): BinaryNode {
  if (!user || user.addressing === 'lid') return node('lid', {});
  const lid = user.kind === 'peer' ? user.peer.lid : user.account.lid;
  return node('lid', { val: `${lid}@lid` });
}

function protocolNode(protocol: string, user: KnownUser | undefined): BinaryNode | undefined {
  switch (protocol) {
    case 'devices':
      return devicesNode(user);
    case 'lid':
      return lidNode(user);
    case 'contact':
      return node('contact', { type: user ? 'in' : 'out' });
    default:
      return undefined;
  }
}

export function answerUsync(iq: BinaryNode, directory: Directory): BinaryNode[] {
  const usync = child(iq, 'usync');
  const protocols = children(child(usync, 'query')).map((p) => p.tag);
  const users = children(child(usync, 'list'), 'user').map((u) => {
    // onWhatsApp asks by phone (`<contact>+5511…</contact>`) with no jid.
    const phone = bytesOf(child(u, 'contact'))?.toString('utf8');
    const jid = u.attrs.jid ?? (phone ? pnJid(phone.replace(/\D/g, '')) : undefined);
    const known = u.attrs.jid ? directory.lookup(u.attrs.jid) : phone ? directory.lookupPhone(phone) : undefined;
    const content = protocols.map((p) => protocolNode(p, known)).filter((n): n is BinaryNode => n !== undefined);
    return node('user', { jid }, content);
  });
  const attrs = usync?.attrs ?? {};
  return [node('usync', { sid: attrs.sid, mode: attrs.mode, context: attrs.context, index: '0', last: 'true' }, [node('list', {}, users)])];
}
