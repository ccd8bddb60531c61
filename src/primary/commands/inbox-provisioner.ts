/** Creates a Chatwoot API inbox pointed at Ponte: the inbox, its webhook URL, its signing secret read, its first member. */
import type { Redis } from 'ioredis';
import { ChatwootError, ChatwootLostResponseError, ChatwootNotFoundError, ChatwootUnauthorizedError } from '../../chatwoot/errors.js';
import type { ChatwootClientLike, CwInbox } from '../../chatwoot/types.js';
import { ControlError } from '../../cluster/ipc.js';
import { instanceKey } from '../../model/instance-key.js';
import type { Logger } from '../../observability/logger.js';
import type { RedisKeys } from '../../redis/keys.js';

export interface NewInboxRequest {
  accountId: number;
  /** The inbox's name in Chatwoot. */
  name: string;
  /** The Chatwoot user made a member of the inbox; the access token's own user when undefined. */
  memberUserId?: number;
  /**
   * Names the request across repeats (a command run again after a crash or
   * an outage): a repeat reuses the inbox the first run created.
   */
  ref: string;
}

export interface NewInbox {
  accountId: number;
  inboxId: number;
  name: string;
  instanceKey: string;
  /** Ponte read the inbox's signing secret, so it verifies the inbox's webhooks. */
  secretKnown: boolean;
  memberUserId: number;
  /** An earlier run of the same request had created it. */
  reused: boolean;
}

export interface InboxProvisionerDeps {
  chatwoot: ChatwootClientLike;
  redis: Redis;
  keys: RedisKeys;
  /** `PUBLIC_URL`, without a trailing slash. */
  publicUrl: string | undefined;
  /** `WEBHOOK_SECRET`: the inbox webhook URL carries it. */
  webhookSecret: string;
  /** Reads an inbox's signing secret now (`InboxSecrets`): undefined when Chatwoot shows none or cannot answer yet. */
  secrets: { readNow(instanceKey: string): Promise<string | undefined> };
  log: Logger;
}

/** What an operator reads when `PUBLIC_URL` is missing. */
export const PUBLIC_URL_NEEDED =
  'Creating an inbox needs PUBLIC_URL, the address Chatwoot reaches Ponte at, for the inbox webhook URL: set it in .env (e.g. PUBLIC_URL=https://ponte.example.com) and restart Ponte.';

/** How long the inbox a request created is remembered for its repeats. */
const CREATED_TTL_S = 86_400;

/** The inbox webhook URL Ponte serves for an instance (DESIGN.md, Decisions 1 and 9). */
export function inboxWebhookUrl(publicUrl: string, key: string, webhookSecret: string): string {
  return `${publicUrl}/webhook/chatwoot/${key}?token=${encodeURIComponent(webhookSecret)}`;
}

/**
 * `erga new` and `POST /admin/instances {name, account}`: checks that the
 * access token's user administers the account (only administrators create
 * inboxes), creates an API inbox, sets its webhook URL to Ponte's inbox
 * webhook (the URL names the inbox id, known only once it exists: create,
 * then PATCH), reads its signing secret, and makes a user a member.
 *
 * The create is the one step that is not repeatable, so the inbox is first
 * created with a placeholder webhook URL naming the request (nothing is
 * delivered to it: a new inbox has no conversation yet): a create whose
 * answer was lost is found by it, and the inbox a finished create made is
 * remembered in Redis under the request's reference. A repeat of the request
 * therefore reuses its inbox instead of making a second one.
 *
 * Chatwoot's refusals become a {@link ControlError} `chatwoot_refused` whose
 * message says what to do; outages are thrown as they are (the caller
 * retries or reports them).
 */
export class InboxProvisioner {
  constructor(private readonly deps: InboxProvisionerDeps) {}

  async provision(req: NewInboxRequest): Promise<NewInbox> {
    const publicUrl = this.deps.publicUrl;
    if (!publicUrl) throw new ControlError('not_configured', PUBLIC_URL_NEEDED);
    const { chatwoot } = this.deps;
    const { accountId } = req;
    const profile = await ask(() => chatwoot.getProfile(), "Chatwoot refused to show the access token's user", accountId);
    const role = profile.accounts.find((a) => a.id === accountId)?.role;
    if (role === undefined) throw new ControlError('chatwoot_refused', `The access token's user (${profile.email}) is not in account ${accountId}: only an administrator of that account can create its inboxes.`);
    if (role !== 'administrator') {
      throw new ControlError('chatwoot_refused', `The access token's user (${profile.email}) is an ${role} of account ${accountId}, not an administrator: only administrators create inboxes. Put an administrator's access token in CHATWOOT_API_ACCESS_TOKEN.`);
    }

    const { inbox, reused } = await this.findOrCreate(req, publicUrl);
    const key = instanceKey({ accountId, inboxId: inbox.id });
    const made = `Inbox "${inbox.name}" (id ${inbox.id}) was created in account ${accountId}, but`;
    await ask(() => chatwoot.updateInbox(accountId, inbox.id, { channel: { webhook_url: inboxWebhookUrl(publicUrl, key, this.deps.webhookSecret) } }), `${made} Chatwoot refused to set its webhook URL`, accountId);
    const secret = await this.deps.secrets.readNow(key);
    const memberUserId = req.memberUserId ?? profile.id;
    await ask(() => chatwoot.addInboxMembers(accountId, inbox.id, [memberUserId]), `${made} Chatwoot refused to make user ${memberUserId} a member`, accountId);
    this.deps.log.info({ instanceId: key, reused, secretKnown: secret !== undefined }, 'inbox created for a new instance');
    return { accountId, inboxId: inbox.id, name: inbox.name, instanceKey: key, secretKnown: secret !== undefined, memberUserId, reused };
  }

  private async findOrCreate(req: NewInboxRequest, publicUrl: string): Promise<{ inbox: CwInbox; reused: boolean }> {
    const { chatwoot, redis, keys } = this.deps;
    const { accountId, name, ref } = req;
    const recorded = await redis.get(keys.createdInbox(ref));
    if (recorded !== null) {
      try {
        return { inbox: await chatwoot.getInbox(accountId, Number(recorded)), reused: true };
      } catch (err) {
        // Deleted since the first run: make a new one.
        if (!(err instanceof ChatwootNotFoundError)) translate(err, 'Chatwoot refused to show the inbox an earlier run created', accountId);
      }
    }
    const earlier = await this.byPlaceholder(accountId, ref);
    if (earlier) return { inbox: await this.remember(ref, earlier), reused: true };
    let inbox: CwInbox;
    try {
      inbox = await chatwoot.createInbox(accountId, { name, channel: { type: 'api', webhook_url: placeholderUrl(publicUrl, ref) } });
    } catch (err) {
      const found = err instanceof ChatwootLostResponseError ? await this.byPlaceholder(accountId, ref) : undefined;
      if (!found) translate(err, `Chatwoot refused to create the inbox "${name}"`, accountId);
      inbox = found;
    }
    return { inbox: await this.remember(ref, inbox), reused: false };
  }

  private async remember(ref: string, inbox: CwInbox): Promise<CwInbox> {
    await this.deps.redis.set(this.deps.keys.createdInbox(ref), String(inbox.id), 'EX', CREATED_TTL_S);
    return inbox;
  }

  /** The inbox still carrying this request's placeholder webhook URL, if a create of it went through. */
  private async byPlaceholder(accountId: number, ref: string): Promise<CwInbox | undefined> {
    const inboxes = await ask(() => this.deps.chatwoot.listInboxes(accountId), 'Chatwoot refused to list the inboxes', accountId);
    return inboxes.find((i) => i.channel_type === 'Channel::Api' && refOfPlaceholder(i.webhook_url) === ref);
  }
}

/** Where a new inbox points until its id is known: Ponte's inbox webhook route with no instance, naming the request. */
export function placeholderUrl(publicUrl: string, ref: string): string {
  return `${publicUrl}/webhook/chatwoot/new?ref=${encodeURIComponent(ref)}`;
}

function refOfPlaceholder(url: string | null | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.pathname.endsWith('/webhook/chatwoot/new') ? (u.searchParams.get('ref') ?? undefined) : undefined;
  } catch {
    // Not a URL at all (Chatwoot does not check): not a placeholder of Ponte's.
    return undefined;
  }
}

async function ask<T>(call: () => Promise<T>, refused: string, accountId: number): Promise<T> {
  try {
    return await call();
  } catch (err) {
    return translate(err, refused, accountId);
  }
}

/**
 * A Chatwoot refusal as a sentence an operator can act on; outages (and
 * anything that is not a Chatwoot answer) are rethrown unchanged.
 */
function translate(err: unknown, refused: string, accountId: number): never {
  if (!(err instanceof ChatwootError)) throw err;
  if (err instanceof ChatwootUnauthorizedError || err.status === 403) {
    throw new ControlError('chatwoot_refused', `${refused} (${err.status}): the access token (CHATWOOT_API_ACCESS_TOKEN) is not an administrator of account ${accountId}, or is not valid.`);
  }
  if (err.retryable || err.kind === 'lost_response') throw err;
  if (err instanceof ChatwootNotFoundError) throw new ControlError('chatwoot_refused', `${refused} (404): account ${accountId} or the inbox does not exist in Chatwoot.`);
  throw new ControlError('chatwoot_refused', `${refused}: ${err.message}.`);
}
