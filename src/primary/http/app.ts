/** The Express app: health routes, the route sets, JSON errors and request logging. */
import express, { type ErrorRequestHandler, type Express, type Request, type Response, type Router } from 'express';
import { coerceError } from '../../lib/errors.js';
import type { Logger } from '../../observability/logger.js';

/** What the HTTP layer needs from the rest of the daemon, injected so tests build the app without a server. */
export interface AppDeps {
  log: Logger;
  /** Liveness details; the process answers as long as it runs. */
  version: string;
  /**
   * Readiness: Redis reachable, workers ready, Chatwoot's URL and token checked, not shutting down.
   * Returns every check, and for a failing one a short reason that names no host or secret (anyone may read it).
   */
  readiness(): Promise<{ ready: boolean; checks: Record<string, boolean>; reasons?: Record<string, string> }>;
  /** Routers mounted after the probes (operator routes, webhooks). */
  routes?: Router[];
  /** Error handlers tried before the generic 500. */
  errorHandlers?: ErrorRequestHandler[];
}

/** Builds the Express app; `server.ts` listens. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');

  app.get('/healthz', (_req: Request, res: Response) => {
    res.json({ status: 'ok', version: deps.version, uptimeS: Math.round(process.uptime()) });
  });

  app.get('/readyz', async (_req: Request, res: Response) => {
    const { ready, checks, reasons } = await deps.readiness();
    res.status(ready ? 200 : 503).json({ ready, checks, ...(reasons && Object.keys(reasons).length > 0 ? { reasons } : {}) });
  });

  for (const r of deps.routes ?? []) app.use(r);

  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: 'not_found', message: `No route for ${req.method} ${req.path}` });
  });

  for (const h of deps.errorHandlers ?? []) app.use(h);
  const fallback: ErrorRequestHandler = (err, req, res, _next) => {
    deps.log.error({ err: coerceError(err), method: req.method, path: req.path }, 'request failed');
    if (!res.headersSent) res.status(500).json({ error: 'internal', message: 'Ponte could not handle this request; see its log' });
  };
  app.use(fallback);

  return app;
}
