/** How a child process (the daemon under test) is pointed at the loopback server: node flags and environment. */
import { fileURLToPath } from 'node:url';

/** The daemon's setting for the WebSocket URL its Baileys sockets connect to. */
export const WHATSAPP_URL_ENV = 'WHATSAPP_WS_URL';

/** Absolute path of the preload file. */
export const PRELOAD_PATH = fileURLToPath(new URL('./preload.ts', import.meta.url));

/** Node flags that load tsx and then the preload (tsx first: the preload is TypeScript). */
export function preloadNodeArgs(): string[] {
  return ['--import', 'tsx', '--import', PRELOAD_PATH];
}

/** The environment entries that send the child's Baileys sockets to `serverUrl`. */
export function preloadEnv(serverUrl: string): Record<string, string> {
  return { [WHATSAPP_URL_ENV]: serverUrl };
}
