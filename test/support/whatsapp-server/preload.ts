/**
 * Preload for a child process (`node --import tsx --import <this file> …`;
 * cluster workers inherit it through `execArgv`): makes the process trust
 * the loopback server's Noise root (`trustTestRoot`) and its media host's
 * TLS certificate, and routes history-sync downloads to the media host
 * (`routeWhatsAppMedia`). The daemon is pointed at the server by its own
 * setting, `WHATSAPP_WS_URL` (see `preloadEnv`).
 */
import { routeWhatsAppMedia } from './media-route.js';
import { trustTestMediaCertificate } from './media-tls.js';
import { trustTestRoot } from './test-root.js';

trustTestRoot();
trustTestMediaCertificate();
routeWhatsAppMedia();
