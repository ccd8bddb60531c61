import express, { type Express, type Request, type Response } from 'express';
import type { Logger } from '../observability/logger.js';

/** What the HTTP layer needs from the rest of the daemon, injected so tests build the app without a server. */
export interface AppDeps {
  log: Logger;
  /** Liveness details; the process answers as long as it runs. */
  version: string;
  /** Readiness: Redis reachable, workers ready, not shutting down. Returns the failing checks. */
  readiness(): Promise<{ ready: boolean; checks: Record<string, boolean> }>;
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
    const { ready, checks } = await deps.readiness();
    res.status(ready ? 200 : 503).json({ ready, checks });
  });

  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: 'not_found', message: `No route for ${req.method} ${req.path}` });
  });

  return app;
}
