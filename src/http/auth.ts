import { timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/**
 * Guards operator routes with bearer tokens (`Authorization: Bearer <token>`,
 * any of `tokens`); with none configured, only loopback callers are let in.
 */
export function bearerAuth(configured: ReadonlyArray<string | undefined>, what: string) {
  const tokens = configured.filter((t): t is string => t !== undefined);
  return (req: Request, res: Response, next: NextFunction): void => {
    if (tokens.length === 0) {
      if (isLoopback(req.socket.remoteAddress)) return next();
      res.status(403).json({ error: 'forbidden', message: `${what} is open to loopback only while no token is configured` });
      return;
    }
    const header = req.get('authorization') ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m) {
      res.status(401).json({ error: 'unauthorized', message: `${what} needs Authorization: Bearer <token>` });
      return;
    }
    const given = m[1]!.trim();
    if (!tokens.some((t) => safeEqual(given, t))) {
      res.status(401).json({ error: 'unauthorized', message: 'the bearer token is wrong' });
      return;
    }
    next();
  };
}
