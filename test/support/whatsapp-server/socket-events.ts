/**
 * Records what a Baileys socket emits (connection updates, creds updates,
 * upserts, message updates, history sets and statuses) so a test can wait
 * for the event it expects.
 * Waits never time out by themselves; the test runner's timeout does.
 */
import type { BaileysEventEmitter, BaileysEventMap, proto, WAMessage, WAMessageUpdate } from '@whiskeysockets/baileys';
import { Inbox } from './inbox.js';

export type ConnectionUpdate = BaileysEventMap['connection.update'];
export type Upsert = BaileysEventMap['messages.upsert'];
export type HistorySet = BaileysEventMap['messaging-history.set'];
export type HistoryStatus = BaileysEventMap['messaging-history.status'];

/** The status code of a close, as `DisconnectReason` numbers it (rc14 closes with a Boom). */
export function closeStatusCode(update: ConnectionUpdate): number | undefined {
  const error = update.lastDisconnect?.error as { output?: { statusCode?: number } } | undefined;
  return error?.output?.statusCode;
}

export class SocketEvents {
  readonly connection = new Inbox<ConnectionUpdate>('connection.update');
  readonly creds = new Inbox<BaileysEventMap['creds.update']>('creds.update');
  readonly upserts = new Inbox<Upsert>('messages.upsert');
  readonly updates = new Inbox<WAMessageUpdate>('messages.update');
  readonly history = new Inbox<HistorySet>('messaging-history.set');
  readonly historyStatus = new Inbox<HistoryStatus>('messaging-history.status');

  constructor(ev: BaileysEventEmitter) {
    ev.on('connection.update', (u) => this.connection.push(u));
    ev.on('creds.update', (u) => this.creds.push(u));
    ev.on('messages.upsert', (u) => this.upserts.push(u));
    ev.on('messages.update', (us) => {
      for (const u of us) this.updates.push(u);
    });
    ev.on('messaging-history.set', (h) => this.history.push(h));
    ev.on('messaging-history.status', (h) => this.historyStatus.push(h));
  }

  /** The first QR shown. */
  async qr(): Promise<string> {
    const u = await this.connection.waitFor((x) => typeof x.qr === 'string');
    return u.qr ?? '';
  }

  /** Every QR shown so far. */
  qrs(): string[] {
    return this.connection.items.map((u) => u.qr).filter((q): q is string => typeof q === 'string');
  }

  async opened(): Promise<void> {
    await this.connection.waitFor((u) => u.connection === 'open');
  }

  /** Resolves with the close's status code (`DisconnectReason`). */
  async closed(): Promise<number | undefined> {
    return closeStatusCode(await this.connection.waitFor((u) => u.connection === 'close'));
  }

  /** The upserted message with this id, and the upsert type (`notify` live, `append` offline or own echo). */
  async message(id: string): Promise<{ message: WAMessage; type: Upsert['type'] }> {
    const upsert = await this.upserts.waitFor((u) => u.messages.some((m) => m.key.id === id));
    const message = upsert.messages.find((m) => m.key.id === id);
    if (!message) throw new Error('unreachable: upsert without the message');
    return { message, type: upsert.type };
  }

  /** The `messages.update` that gives message `id` this status (`proto.WebMessageInfo.Status`). */
  status(id: string, status: proto.WebMessageInfo.Status): Promise<WAMessageUpdate> {
    return this.updates.waitFor((u) => u.key.id === id && u.update.status === status);
  }

  close(): void {
    for (const inbox of [this.connection, this.creds, this.upserts, this.updates, this.history, this.historyStatus]) inbox.close();
  }
}
