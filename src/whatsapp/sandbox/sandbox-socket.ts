import { type AuthenticationCreds, type AuthenticationState, type Contact, type WAMessage, initAuthCreds, makeEventBuffer, proto } from '@whiskeysockets/baileys';
import type { ILogger } from '@whiskeysockets/baileys/lib/Utils/logger.js';
import type { SocketFactory, SocketFactoryOptions, WaSocket } from '../socket.js';
import { buildMessage, newWaMessageId } from './message-builder.js';

/**
 * A simulated WhatsApp account behind the {@link WaSocket} interface: it
 * emits what a live rc14 socket emits (Baileys' own event emitter, real
 * `proto.WebMessageInfo` objects), so the rest of Ponte cannot tell it from
 * a phone. Tests, the benchmark and operators' rehearsals drive it through
 * {@link SandboxSocket.receive} and friends.
 */
export class SandboxSocket implements WaSocket {
  readonly ev;
  private closed = false;
  private readonly creds: AuthenticationCreds;
  /** Messages this socket sent, by id (a live socket echoes them as `append`). */
  readonly sent: WAMessage[] = [];

  constructor(private readonly options: SocketFactoryOptions) {
    this.ev = makeEventBuffer(options.logger);
    this.creds = options.auth.creds;
    // A live socket reports `connecting` right after construction, then
    // `open` for a linked account; listeners attach synchronously before it.
    queueMicrotask(() => {
      if (this.closed) return;
      this.ev.emit('connection.update', { connection: 'connecting' });
      if (this.creds.registered && this.creds.me) this.ev.emit('connection.update', { connection: 'open', isNewLogin: false });
    });
  }

  get user(): Contact | undefined {
    return this.creds.me ?? undefined;
  }

  /** Messages arriving from WhatsApp, as one `messages.upsert`. */
  receive(messages: WAMessage[], type: 'notify' | 'append' = 'notify'): void {
    if (this.closed) throw new Error(`sandbox socket of ${this.options.instanceKey} is closed`);
    this.ev.emit('messages.upsert', { messages, type });
  }

  sendMessage: WaSocket['sendMessage'] = (jid, content) => {
    if (this.closed) return Promise.reject(new Error('Connection Closed'));
    const text = 'text' in content && typeof content.text === 'string' ? content.text : '';
    const user = jid.split('@')[0] ?? jid;
    const msg = buildMessage({ fromMe: true, id: newWaMessageId(), ...(jid.endsWith('@lid') ? { fromLid: user } : { fromPn: user }) }, { conversation: text });
    msg.status = proto.WebMessageInfo.Status.SERVER_ACK;
    this.sent.push(msg);
    // The echo of an own send, as a live socket delivers it.
    queueMicrotask(() => !this.closed && this.ev.emit('messages.upsert', { messages: [msg], type: 'append' }));
    return Promise.resolve(msg);
  };

  end(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.ev.emit('connection.update', { connection: 'close', lastDisconnect: { error, date: new Date() } });
    this.ev.removeAllListeners('connection.update');
  }
}

/** The sandbox driver's socket factory (`WHATSAPP_DRIVER=sandbox`). */
export function sandboxSocketFactory(onSocket?: (socket: SandboxSocket) => void): SocketFactory {
  return (options) => {
    const socket = new SandboxSocket(options);
    onSocket?.(socket);
    return socket;
  };
}

/** A Baileys-compatible logger that discards everything (for tests). */
export const silentBaileysLogger: ILogger = {
  level: 'silent',
  child: () => silentBaileysLogger,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Fresh, unlinked auth state kept in memory (the sandbox has no Signal sessions to persist). */
export function memoryAuthState(): AuthenticationState {
  const data = new Map<string, unknown>();
  return {
    creds: initAuthCreds(),
    keys: {
      get: (type, ids) => {
        const out: Record<string, unknown> = {};
        for (const id of ids) {
          const v = data.get(`${type}:${id}`);
          if (v !== undefined) out[id] = v;
        }
        return Promise.resolve(out as never);
      },
      set: (values) => {
        for (const [type, entries] of Object.entries(values)) {
          for (const [id, v] of Object.entries(entries ?? {})) {
            if (v === null) data.delete(`${type}:${id}`);
            else data.set(`${type}:${id}`, v);
          }
        }
        return Promise.resolve();
      },
    },
  };
}
