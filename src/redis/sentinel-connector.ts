/** ioredis' Sentinel connector with its fail-over watcher tied to the connection it watches for. */
/*
 * With `failoverDetector`, ioredis subscribes to Sentinel's `+switch-master`
 * for each connection and, on the message, closes the connection so that it
 * asks Sentinel for the new master. ioredis 6.0.0 drops that watcher only
 * when the connection is closed on purpose or the next one opens: after a
 * master crash the old watcher stays subscribed while the connection looks
 * for a master. When the switch is announced it then "closes" the
 * connection in the middle of that search, and ioredis ends the connection
 * for good ("Connection is closed." on every later command). The fix
 * upstream (redis/ioredis#2198, ties the watcher's cleanup to the stream's
 * close) is not released; this does the same here.
 */
import { SentinelConnector, type SentinelConnectionOptions } from 'ioredis';

type ErrorEmitter = Parameters<SentinelConnector['connect']>[0];
type NetStream = Awaited<ReturnType<SentinelConnector['connect']>>;
/** The part of ioredis' FailoverDetector used here (not exported by ioredis). */
interface FailoverWatcher {
  cleanup(): void;
}

export class WatchedSentinelConnector extends SentinelConnector {
  /** ioredis passes a client's whole options (`Connector` is typed as taking `unknown`); a Sentinel client's include the Sentinel ones. */
  constructor(options: unknown) {
    super(options as SentinelConnectionOptions);
  }

  override async connect(eventEmitter: ErrorEmitter): Promise<NetStream> {
    const stream = await super.connect(eventEmitter);
    // The watcher is made when this stream connects and belongs to it; the next stream is only
    // opened after this one has closed, so the watcher found here on close is this stream's.
    stream.once('close', () => this.dropWatcher());
    return stream;
  }

  private dropWatcher(): void {
    const watcher = Reflect.get(this, 'failoverDetector') as FailoverWatcher | null | undefined;
    if (!watcher) return;
    Reflect.set(this, 'failoverDetector', null);
    watcher.cleanup();
  }
}
