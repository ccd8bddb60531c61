/** Bearer-token guards of the operator routes, and the "direct loopback" rule for when no token is set. */
import type { NextFunction, Request, Response } from 'express';
import { safeEqual } from '../../lib/safe-equal.js';

export function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/** Headers a reverse proxy adds; a request carrying any of them came through one, whatever its socket says. */
const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip'] as const;

/**
 * A connection made on this host, not relayed by a proxy: the socket's peer
 * is loopback and no forwarding header is present. Behind a reverse proxy on
 * the same host every socket is loopback, so the headers decide.
 */
export function isDirectLoopback(req: Request): boolean {
  return isLoopback(req.socket.remoteAddress) && FORWARDING_HEADERS.every((h) => req.headers[h] === undefined);
}

/** A token of another role: shown, it is refused with 403 and a sentence naming its role. */
export interface OtherRole {
  token: string | undefined;
  /** What it is, for the answer: `SEND_TOKEN`, `ADMIN_TOKEN`… */
  name: string;
}

/** The 403 for a right token of the wrong role; `undefined` when `given` is none of them. */
export function otherRoleRefusal(given: string, others: readonly OtherRole[], what: string): { error: string; message: string } | undefined {
  const other = others.find((o) => o.token !== undefined && safeEqual(given, o.token));
  return other ? { error: 'forbidden', message: `${other.name} cannot open ${what}: each token has one role` } : undefined;
}

/**
 * Guards a route with bearer tokens (`Authorization: Bearer <token>`, any of
 * `tokens`); with none configured, only direct loopback connections are let
 * in (DESIGN.md, Decisions 16). A token of another role (`others`) is
 * refused with 403 and its role named. Runs before any body is read.
 */
export function bearerAuth(configured: ReadonlyArray<string | undefined>, what: string, others: readonly OtherRole[] = []) {
  const tokens = configured.filter((t): t is string => t !== undefined);
  return (req: Request, res: Response, next: NextFunction): void => {
    if (tokens.length === 0) {
      if (isDirectLoopback(req)) return next();
      res.status(403).json({ error: 'forbidden', message: `${what} is open only to direct connections from this host while no token is configured` });
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
      const refused = otherRoleRefusal(given, others, what);
      if (refused) {
        res.status(403).json(refused);
        return;
      }
      res.status(401).json({ error: 'unauthorized', message: 'the bearer token is wrong' });
      return;
    }
    next();
  };
}
