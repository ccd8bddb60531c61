/**
 * A TCP proxy on a free loopback port that can hold new connections: while
 * held, a client's connection is accepted but nothing it sends is passed on
 * until `release()`, so a test can freeze a client in the middle of a
 * request at a moment of its choosing. Connections made before `hold()`
 * keep flowing.
 */
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';

export interface HoldingProxy {
  port: number;
  /** From now on, new connections wait (accepted, not forwarded). */
  hold(): void;
  /** Forwards every waiting connection and stops holding new ones. */
  release(): void;
  /** How many connections are waiting. */
  waiting(): number;
  close(): Promise<void>;
}

export async function startHoldingProxy(target: { host: string; port: number }): Promise<HoldingProxy> {
  let holding = false;
  const waiting: Socket[] = [];
  const open = new Set<Socket>();
  const forward = (client: Socket) => {
    const upstream = connect(target.port, target.host);
    open.add(upstream);
    upstream.on('close', () => open.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('end', () => client.end());
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    if (holding) {
      // Paused, so what the client sends stays buffered for the upstream it gets on release.
      client.pause();
      waiting.push(client);
    } else forward(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const client of waiting.splice(0)) if (!client.destroyed) forward(client);
    },
    waiting: () => waiting.filter((c) => !c.destroyed).length,
    close: async () => {
      for (const socket of open) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
