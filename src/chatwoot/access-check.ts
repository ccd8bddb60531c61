/**
 * Checks a Chatwoot URL and access token with `GET /api/v1/profile`, and says what is wrong in one sentence.
 *
 * Used by `npm run setup` before it writes `.env`, and by the primary at
 * start-up before `/readyz` turns true. The profile is the token's user with
 * a role per account (`reference/chatwoot.md` §1: an agent bot's token is
 * refused there with its own 401 text). Every failure becomes a
 * {@link ChatwootAccessProblem} whose `reason` names the cause and the fix;
 * no reason ever holds the token (the profile carries it as `access_token`:
 * it is dropped at parsing).
 */
import { z } from 'zod';
import { ChatwootBotTokenError, ChatwootError, ChatwootNotFoundError, ChatwootRateLimitedError, ChatwootUnauthorizedError } from './errors.js';

/** One account the token's user belongs to. */
export interface ChatwootAccountAccess {
  id: number;
  name: string;
  role: 'administrator' | 'agent';
  /** `active`, or `suspended` (Chatwoot refuses a suspended account's API). */
  status: string;
}

/** What the token gives access to. */
export interface ChatwootAccess {
  user: { id: number; name: string; email: string };
  accounts: ChatwootAccountAccess[];
  /** Active accounts where the user is an administrator (who can create inboxes and read their signing secrets). */
  adminAccounts: ChatwootAccountAccess[];
}

export type ChatwootAccessProblemKind =
  | 'refused'
  | 'dns'
  | 'tls'
  | 'timeout'
  | 'unreachable'
  | 'bad_token'
  | 'bot_token'
  | 'not_chatwoot'
  | 'chatwoot_error'
  | 'not_admin';

/**
 * Each problem in a few words that name no host and no account, for where
 * anyone may read them (`/readyz`); the log and `npm run setup` get `reason`.
 */
export const ACCESS_PROBLEM_SUMMARY: Readonly<Record<ChatwootAccessProblemKind, string>> = {
  refused: 'Chatwoot refused the connection',
  dns: "Chatwoot's host name does not resolve",
  tls: 'the TLS handshake with Chatwoot failed',
  timeout: 'Chatwoot did not answer in time',
  unreachable: 'Chatwoot could not be reached',
  bad_token: 'Chatwoot refused the access token (401)',
  bot_token: "the access token is an agent bot's; a user's is needed",
  not_chatwoot: 'CHATWOOT_BASE_URL does not answer like Chatwoot',
  chatwoot_error: 'Chatwoot answered with an error',
  not_admin: "the token's user administers no Chatwoot account",
};

export interface ChatwootAccessProblem {
  kind: ChatwootAccessProblemKind;
  /** One sentence for an operator: what is wrong and what to do. Never holds the token. */
  reason: string;
}

export type ChatwootAccessResult = ({ ok: true } & ChatwootAccess) | ({ ok: false } & ChatwootAccessProblem);

/** The one call the check needs; the daemon's `ChatwootClient` is one. */
export interface ProfileReader {
  getProfile(): Promise<unknown>;
}

export interface AccessCheckOptions {
  /** Chatwoot's base URL, named in the reasons (its credentials, if any, left out). */
  baseUrl: string;
  /** Fail with `not_admin` when the user administers no active account (`npm run setup` needs one). */
  requireAdministrator: boolean;
}

const ProfileSchema = z.object({
  id: z.number(),
  name: z.string().catch(''),
  email: z.string().catch(''),
  accounts: z.array(
    z.object({
      id: z.number(),
      name: z.string().catch(''),
      role: z.enum(['administrator', 'agent']).catch('agent'),
      status: z.string().catch('active'),
    }),
  ),
});

/** Checks the URL and token behind `reader`; never throws for anything Chatwoot (or the network) does. */
export async function checkChatwootAccess(reader: ProfileReader, o: AccessCheckOptions): Promise<ChatwootAccessResult> {
  const where = describeBase(o.baseUrl);
  let body: unknown;
  try {
    body = await reader.getProfile();
  } catch (err) {
    if (!(err instanceof ChatwootError)) throw err;
    return { ok: false, ...describeFailure(err, where) };
  }
  const parsed = ProfileSchema.safeParse(body);
  if (!parsed.success) {
    return { ok: false, kind: 'not_chatwoot', reason: `${where} answered /api/v1/profile with something that is not a Chatwoot profile: is this the base URL of Chatwoot (without /app)?` };
  }
  const { id, name, email, accounts } = parsed.data;
  const adminAccounts = accounts.filter((a) => a.role === 'administrator' && a.status === 'active');
  if (o.requireAdministrator && adminAccounts.length === 0) {
    const memberships = accounts.length === 0 ? 'it belongs to no account' : `it is ${accounts.map((a) => `${a.role} in ${describeAccount(a)}${a.status === 'active' ? '' : ` (${a.status})`}`).join(', ')}`;
    return {
      ok: false,
      kind: 'not_admin',
      reason: `the token's user (${email || name || `user ${id}`}) is not an administrator of any active Chatwoot account (${memberships}); Ponte needs an administrator's token to create inboxes and read their signing secrets`,
    };
  }
  return { ok: true, user: { id, name, email }, accounts, adminAccounts };
}

export function describeAccount(a: { id: number; name: string }): string {
  return a.name ? `"${a.name}" (account ${a.id})` : `account ${a.id}`;
}

/** The base URL as it may be shown: no credentials, no trailing slash. */
function describeBase(baseUrl: string): string {
  const u = URL.canParse(baseUrl) ? new URL(baseUrl) : undefined;
  if (!u) return 'Chatwoot';
  u.username = '';
  u.password = '';
  return `Chatwoot at ${u.toString().replace(/\/+$/, '')}`;
}

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL']);
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const UNTRUSTED_CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

function isTlsCode(code: string): boolean {
  return UNTRUSTED_CERT_CODES.has(code) || /^(ERR_TLS_|ERR_SSL_|CERT_)/.test(code);
}

function tlsReason(code: string, where: string): string {
  if (code === 'CERT_HAS_EXPIRED') return `the TLS certificate of ${where} has expired (${code})`;
  if (code === 'CERT_NOT_YET_VALID') return `the TLS certificate of ${where} is not valid yet (${code}): check this host's clock`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the TLS certificate of ${where} is not for that host name (${code})`;
  if (UNTRUSTED_CERT_CODES.has(code)) {
    return `the TLS certificate of ${where} is not trusted (${code}: self-signed or from an unknown authority); use a trusted certificate, or give Node its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem`;
  }
  if (/^ERR_SSL_(WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LAYER_FAILURE)$/.test(code)) {
    return `the TLS handshake with ${where} failed (${code}): that port does not speak TLS; if Chatwoot serves plain HTTP there, use http://`;
  }
  return `the TLS handshake with ${where} failed (${code})`;
}

function describeFailure(err: ChatwootError, where: string): ChatwootAccessProblem {
  if (err instanceof ChatwootBotTokenError) {
    return { kind: 'bot_token', reason: `${where} says this is an agent bot's token (401 "not authorized for bots"); Ponte needs a user's access token: an administrator's, from Profile settings → Access token` };
  }
  if (err instanceof ChatwootUnauthorizedError) {
    return {
      kind: 'bad_token',
      reason: `${where} refused the access token (401 Invalid Access Token): copy it again from Profile settings → Access token; behind nginx, also allow the api_access_token header (underscores_in_headers on;)`,
    };
  }
  if (err instanceof ChatwootNotFoundError) {
    return { kind: 'not_chatwoot', reason: `${where} answered 404 for /api/v1/profile: is this the base URL of Chatwoot (without /app or any other path)?` };
  }
  if (err instanceof ChatwootRateLimitedError) return { kind: 'chatwoot_error', reason: `${where} answered 429 (rate limited): try again in a minute` };
  if (err.status !== undefined) return { kind: 'chatwoot_error', reason: `${where} answered ${err.status} for /api/v1/profile: see Chatwoot's own log` };
  const code = err.networkCode ?? 'ERR_UNKNOWN';
  if (code === 'ECONNREFUSED') return { kind: 'refused', reason: `${where} refused the connection (ECONNREFUSED): is Chatwoot running, and are the host and port right?` };
  if (DNS_CODES.has(code)) return { kind: 'dns', reason: `the host name of ${where} does not resolve (${code}): check the spelling of the URL and this host's DNS` };
  if (isTlsCode(code)) return { kind: 'tls', reason: tlsReason(code, where) };
  if (TIMEOUT_CODES.has(code)) return { kind: 'timeout', reason: `${where} did not answer in time (${code}): is the host reachable from here (firewall, proxy)?` };
  return { kind: 'unreachable', reason: `${where} could not be reached (${code})` };
}
