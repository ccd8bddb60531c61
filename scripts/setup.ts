/**
 * `npm run setup`: writes a working `.env` for a new installation.
 *
 * Asks for Chatwoot's URL, an administrator's access token and the URL
 * Chatwoot reaches Ponte at (or takes them from flags or the environment),
 * checks the URL and token against Chatwoot (`GET /api/v1/profile`),
 * generates WEBHOOK_SECRET, ADMIN_TOKEN and STATUS_TOKEN, and writes the file
 * with mode 0600. Nothing is written when a check fails.
 *
 *   npm run setup
 *   npm run setup -- --chatwoot-url https://chat.example.com --public-url https://ponte.example.com --yes
 *       (the token from CHATWOOT_API_ACCESS_TOKEN, or --token)
 *
 * Flags: --chatwoot-url, --token, --public-url (or CHATWOOT_BASE_URL,
 * CHATWOOT_API_ACCESS_TOKEN, PUBLIC_URL), --dotenv <path> (default ./.env;
 * not `--env-file`, which Node 20 takes for its own flag wherever it stands),
 * --yes (take defaults, never ask), --force (with --yes, or without a
 * terminal: replace an existing file). Without a terminal nothing is asked.
 * Exit codes: 0 written, 1 refused (a check failed, the file exists), 2 usage.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { createInterface, type Interface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import ipaddr from 'ipaddr.js';
import { checkChatwootAccess, describeAccount } from '../src/chatwoot/access-check.js';
import { ChatwootClient } from '../src/chatwoot/client.js';
import { ConfigError, isLoopbackHost, loadConfig } from '../src/config/load.js';
import { coerceError } from '../src/lib/errors.js';

const USAGE = `usage: npm run setup -- [--chatwoot-url <url>] [--token <token>] [--public-url <url>] [--dotenv <path>] [--yes] [--force]`;

/** Ends the run with a sentence on stderr. */
class Stop extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

interface Answers {
  chatwootUrl: string;
  token: string;
  publicUrl: string;
}

/** Asks on the terminal; `secret` answers are not echoed. */
class Prompter {
  private muted = false;
  private readonly rl: Interface;

  constructor() {
    const out = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        if (!this.muted) process.stdout.write(chunk);
        done();
      },
    });
    this.rl = createInterface({ input: process.stdin, output: out, terminal: true });
  }

  async ask(question: string, o: { default?: string; secret?: boolean } = {}): Promise<string> {
    const prompt = `${question}${o.default ? ` [${o.default}]` : ''}: `;
    if (!o.secret) return (await this.rl.question(prompt)).trim() || (o.default ?? '');
    process.stdout.write(prompt);
    this.muted = true;
    try {
      return (await this.rl.question('')).trim();
    } finally {
      this.muted = false;
      process.stdout.write('\n');
    }
  }

  close(): void {
    this.rl.close();
  }
}

function parseFlags(): { values: { 'chatwoot-url'?: string; token?: string; 'public-url'?: string; dotenv?: string; yes: boolean; force: boolean; help: boolean } } {
  try {
    const { values } = parseArgs({
      options: {
        'chatwoot-url': { type: 'string' },
        token: { type: 'string' },
        'public-url': { type: 'string' },
        dotenv: { type: 'string' },
        yes: { type: 'boolean', short: 'y', default: false },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    return { values };
  } catch (err) {
    // parseArgs refuses an unknown flag or a missing value with a TypeError that says which.
    throw new Stop(`${coerceError(err).message}\n${USAGE}`, 2);
  }
}

/** A flag's value, else the environment's, else undefined (empty counts as unset). */
function given(flag: string | undefined, envName: string): string | undefined {
  const v = flag ?? process.env[envName];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** Chatwoot's base URL from what an operator pasted: http(s), no trailing slash, no dashboard path (`/app/...`). */
function normalizeChatwootUrl(input: string): { url: string } | { problem: string } {
  if (!URL.canParse(input) || !/^https?:\/\//i.test(input)) return { problem: `the Chatwoot URL "${input}" is not an http(s) URL (e.g. https://chat.example.com)` };
  const u = new URL(input);
  u.search = '';
  u.hash = '';
  u.pathname = u.pathname.replace(/\/app(\/.*)?$/, '').replace(/\/+$/, '');
  return { url: u.toString().replace(/\/+$/, '') };
}

/** Why `publicUrl` cannot be where this Chatwoot reaches Ponte, if it cannot; and a warning for private addresses. */
function checkPublicUrl(publicUrl: string, chatwootUrl: string): { url: string; warning?: string } | { problem: string } {
  if (!URL.canParse(publicUrl) || !/^https?:\/\//i.test(publicUrl)) return { problem: `the public URL "${publicUrl}" is not an http(s) URL (e.g. https://ponte.example.com)` };
  const u = new URL(publicUrl);
  if (u.username || u.password) return { problem: 'the public URL must not carry credentials: Chatwoot authenticates with the webhook secret Ponte puts in each URL' };
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const chatwootHost = new URL(chatwootUrl).hostname;
  const unspecified = host === '0.0.0.0' || host === '::';
  if (unspecified) return { problem: `the public URL's host ${host} is a listening address, not one Chatwoot can connect to: give the name or address of this host as Chatwoot sees it` };
  if (isLoopbackHost(host) && !isLoopbackHost(chatwootHost)) {
    return {
      problem: `the public URL ${u.origin} is a loopback address, but Chatwoot is reached at ${chatwootHost}: seen from Chatwoot, ${host} is Chatwoot's own machine (or container), not Ponte; give the name or address Chatwoot reaches this host at`,
    };
  }
  const url = u.toString().replace(/\/+$/, '');
  const privateAddress = isLoopbackHost(host) || (ipaddr.isValid(host) && ipaddr.parse(host).range() !== 'unicast');
  if (privateAddress) {
    return { url, warning: `note: ${host} is a private or loopback address; Chatwoot 4.14 and newer deliver webhooks there only with SAFE_FETCH_ALLOW_PRIVATE_NETWORK=true in Chatwoot's environment` };
  }
  return { url };
}

/** A value as dotenv reads it back unchanged: bare when safe, else single-quoted (dotenv expands nothing inside). */
function envValue(name: string, value: string): string {
  if (/^[A-Za-z0-9_./:@%+=,~?&-]*$/.test(value)) return value;
  if (!/['\n\r]/.test(value)) return `'${value}'`;
  throw new Stop(`${name} holds a quote or a line break, which .env cannot carry`, 2);
}

/** `text` ending in a full stop (unless it ends in one already, or in a question mark). */
function sentence(text: string): string {
  return /[.?!]$/.test(text) ? text : `${text}.`;
}

function secretToken(): string {
  return randomBytes(24).toString('hex');
}

/** Writes `content` to `path` with mode 0600: a new file exclusively, a replacement through a temporary file and a rename. */
async function writeEnvFile(path: string, content: string, replace: boolean): Promise<void> {
  if (!replace) {
    await writeFile(path, content, { mode: 0o600, flag: 'wx' });
    await chmod(path, 0o600);
    return;
  }
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, content, { mode: 0o600, flag: 'wx' });
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function gather(flags: ReturnType<typeof parseFlags>['values'], prompter: Prompter | undefined): Promise<Answers> {
  const missing = (what: string, flag: string, envName: string): Stop =>
    new Stop(`${what} is missing: pass ${flag} (or set ${envName})${process.stdin.isTTY ? ', or run without --yes to be asked' : '; stdin is not a terminal, so setup cannot ask'}.`, 2);

  let chatwootUrl = given(flags['chatwoot-url'], 'CHATWOOT_BASE_URL');
  for (;;) {
    if (chatwootUrl === undefined) {
      if (!prompter) throw missing("Chatwoot's URL", '--chatwoot-url <url>', 'CHATWOOT_BASE_URL');
      chatwootUrl = await prompter.ask("Chatwoot's URL (e.g. https://chat.example.com)");
      if (chatwootUrl === '') {
        chatwootUrl = undefined;
        continue;
      }
    }
    const n = normalizeChatwootUrl(chatwootUrl);
    if ('url' in n) {
      chatwootUrl = n.url;
      break;
    }
    if (!prompter) throw new Stop(n.problem, 2);
    process.stderr.write(`${n.problem}\n`);
    chatwootUrl = undefined;
  }

  let token = given(flags.token, 'CHATWOOT_API_ACCESS_TOKEN');
  while (token === undefined) {
    if (!prompter) throw missing("a Chatwoot administrator's access token", '--token <token>', 'CHATWOOT_API_ACCESS_TOKEN');
    token = (await prompter.ask("Access token of a Chatwoot administrator (Profile settings → Access token; not shown)", { secret: true })) || undefined;
  }
  if (/\s/.test(token)) throw new Stop('the access token holds a space or a line break: copy it again from Profile settings → Access token', 2);

  const chatwootLocal = isLoopbackHost(new URL(chatwootUrl).hostname);
  const fallback = chatwootLocal ? 'http://127.0.0.1:3000' : undefined;
  let publicUrl = given(flags['public-url'], 'PUBLIC_URL') ?? (prompter ? undefined : fallback);
  for (;;) {
    if (publicUrl === undefined) {
      if (!prompter) throw missing('the URL Chatwoot reaches Ponte at', '--public-url <url>', 'PUBLIC_URL');
      publicUrl = (await prompter.ask('URL Chatwoot reaches Ponte at (e.g. https://ponte.example.com)', fallback ? { default: fallback } : {})) || undefined;
      continue;
    }
    const p = checkPublicUrl(publicUrl, chatwootUrl);
    if ('url' in p) {
      if (p.warning) process.stderr.write(`${p.warning}\n`);
      publicUrl = p.url;
      break;
    }
    if (!prompter) throw new Stop(sentence(p.problem), 2);
    process.stderr.write(`${sentence(p.problem)}\n`);
    publicUrl = undefined;
  }
  return { chatwootUrl, token, publicUrl };
}

/** May an existing file be replaced? Asks when it can; otherwise only `--force` says yes. */
async function mayReplace(path: string, flags: ReturnType<typeof parseFlags>['values'], prompter: Prompter | undefined): Promise<boolean> {
  if (!existsSync(path)) return false;
  if (flags.force) return true;
  const consequence = 'its secrets would change, and every Chatwoot webhook URL that carries the old WEBHOOK_SECRET would stop working';
  if (!prompter) {
    throw new Stop(`${path} already exists and was left as it is (${consequence}); pass --force to replace it, or --dotenv <path> to write elsewhere.`, 1);
  }
  const answer = await prompter.ask(`${path} already exists; replace it? ${consequence[0]!.toUpperCase()}${consequence.slice(1)} [y/N]`);
  if (!/^y(es)?$/i.test(answer)) throw new Stop(`${path} was left as it is.`, 1);
  return true;
}

async function main(): Promise<void> {
  const { values: flags } = parseFlags();
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const path = resolve(flags.dotenv ?? '.env');
  const prompter = !flags.yes && process.stdin.isTTY ? new Prompter() : undefined;
  try {
    const replace = await mayReplace(path, flags, prompter);
    const answers = await gather(flags, prompter);
    await setUp(path, answers, replace);
  } finally {
    prompter?.close();
  }
}

async function setUp(path: string, a: Answers, replace: boolean): Promise<void> {
  process.stdout.write(`Checking ${a.chatwootUrl} …\n`);
  const client = new ChatwootClient({ baseUrl: a.chatwootUrl, apiAccessToken: a.token, timeoutMs: 10_000, idempotentRetries: 0 });
  const access = await checkChatwootAccess(client, { baseUrl: a.chatwootUrl, requireAdministrator: true }).finally(() => client.close());
  if (!access.ok) throw new Stop(`${sentence(access.reason)} Nothing was written.`, 1);

  const [webhookSecret, adminToken, statusToken] = [secretToken(), secretToken(), secretToken()];
  const onlyAccount = access.adminAccounts.length === 1 ? access.adminAccounts[0] : undefined;
  const settings: Array<[string, string]> = [
    ['CHATWOOT_BASE_URL', a.chatwootUrl],
    ['CHATWOOT_API_ACCESS_TOKEN', a.token],
    ['PUBLIC_URL', a.publicUrl],
    ...(onlyAccount ? ([['DEFAULT_CHATWOOT_ACCOUNT_ID', String(onlyAccount.id)]] as Array<[string, string]>) : []),
    ['WEBHOOK_SECRET', webhookSecret],
    ['ADMIN_TOKEN', adminToken],
    ['STATUS_TOKEN', statusToken],
  ];
  // The daemon must start from this file: run it through the same validation first.
  try {
    loadConfig(Object.fromEntries(settings));
  } catch (err) {
    if (err instanceof ConfigError) throw new Stop(`the settings do not validate, nothing was written:\n${err.problems.map((p) => `  - ${p}`).join('\n')}`, 1);
    throw err;
  }
  const content = [
    `# Written by npm run setup on ${new Date().toISOString()}. Keep it private (mode 0600): it holds the secrets.`,
    '# Every other setting keeps its default; .env.example lists them all.',
    ...settings.map(([k, v]) => `${k}=${envValue(k, v)}`),
    '',
  ].join('\n');
  await writeEnvFile(path, content, replace);

  const admin = access.adminAccounts.map(describeAccount).join(', ');
  const lines = [
    `Chatwoot: ${a.chatwootUrl}, user ${access.user.name ? `${access.user.name} (${access.user.email})` : access.user.email}, administrator of ${admin}.`,
    `Wrote ${path} (mode 0600): ${settings.map(([k]) => k).join(', ')}.`,
    onlyAccount ? `DEFAULT_CHATWOOT_ACCOUNT_ID=${onlyAccount.id}: the only account this user administers.` : `DEFAULT_CHATWOOT_ACCOUNT_ID is not set: this user administers ${access.adminAccounts.length} accounts; commands name theirs.`,
    'ADMIN_TOKEN and STATUS_TOKEN are in the file (npm run instance reads them from there).',
    '',
    'Next: npm start, then link a number: npm run instance -- create <inbox_id> <account_id>',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  if (err instanceof Stop) {
    process.stderr.write(`setup: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`setup failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
