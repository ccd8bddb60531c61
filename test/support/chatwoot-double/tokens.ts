/**
 * The access tokens the double knows and who owns each, as Chatwoot's
 * `AccessTokenAuthHelper` sees them (`reference/chatwoot.md` §0.1, §1):
 *
 * - the main token: the double's own user (user 1), an administrator of
 *   every account; every route serves it;
 * - other users' tokens, with a role per account, and agent bots' tokens:
 *   `GET /api/v1/profile` answers them as Chatwoot does (a bot's gets 401
 *   "Access to this endpoint is not authorized for bots", like every route
 *   outside `BOT_ACCESSIBLE_ENDPOINTS`). What such a token may do on the other
 *   routes (inbox membership, a bot's own conversations) is not modelled: a
 *   call there is recorded as a violation, so no test can lean on it.
 */
import { randomUUID } from 'node:crypto';
import type { AccountRole, Store } from './store.js';

export type { AccountRole } from './store.js';

export type TokenOwner =
  | { type: 'main' }
  | { type: 'user'; userId: number; roles: ReadonlyMap<number, AccountRole> }
  | { type: 'agent_bot'; name: string };

/** The routes of the double an agent bot may call (`BOT_ACCESSIBLE_ENDPOINTS`): conversations create/show/toggle_status, messages create. */
const BOT_ACCESSIBLE = new Set([
  'POST /api/v1/accounts/{account_id}/conversations',
  'GET /api/v1/accounts/{account_id}/conversations/{conversation_id}',
  'POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/toggle_status',
  'POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages',
]);

export const PROFILE_ROUTE = 'GET /api/v1/profile';

/** What the double answers a token on a route before its handler runs. */
export type TokenVerdict = { allow: true; owner: TokenOwner } | { allow: false; status: number; error: string; violation?: string };

export class Tokens {
  readonly main = `cw-test-${randomUUID()}`;
  private readonly others = new Map<string, TokenOwner>();
  /** While set, every token is refused as Chatwoot refuses an unknown one. */
  private refusing = 0;

  constructor(private readonly store: Store) {}

  addUser(o: { name: string; email: string; roles: Record<number, AccountRole> }): { token: string; userId: number } {
    const { id } = this.store.addUser(o);
    const token = `cw-user-${randomUUID()}`;
    this.others.set(token, { type: 'user', userId: id, roles: new Map(Object.entries(o.roles).map(([k, v]) => [Number(k), v])) });
    return { token, userId: id };
  }

  addAgentBot(o: { name: string }): { token: string } {
    const token = `cw-bot-${randomUUID()}`;
    this.others.set(token, { type: 'agent_bot', name: o.name });
    return { token };
  }

  /** Refuses every token until the returned function runs (a revoked token, or a proxy dropping the header). */
  refuseAll(): () => void {
    this.refusing++;
    let undone = false;
    return () => {
      if (!undone) this.refusing--;
      undone = true;
    };
  }

  verdict(token: unknown, routeKey: string): TokenVerdict {
    const invalid: TokenVerdict = { allow: false, status: 401, error: 'Invalid Access Token' };
    if (typeof token !== 'string' || this.refusing > 0) return invalid;
    if (token === this.main) return { allow: true, owner: { type: 'main' } };
    const owner = this.others.get(token);
    if (!owner) return invalid;
    if (owner.type === 'agent_bot' && !BOT_ACCESSIBLE.has(routeKey)) return { allow: false, status: 401, error: 'Access to this endpoint is not authorized for bots' };
    if (routeKey === PROFILE_ROUTE) return { allow: true, owner };
    return { allow: false, status: 401, error: 'You are not authorized to do this action', violation: `${routeKey}: the double models a ${owner.type === 'user' ? "second user's" : "bot's"} token only for GET /api/v1/profile` };
  }

  /** `api/v1/profiles/show.json.jbuilder`: the user (`role` of the active account) and every account with the user's role in it. */
  profileJson(owner: TokenOwner, token: string): Record<string, unknown> {
    const accounts = [...this.store.accounts.values()];
    const { id, name, email } = owner.type === 'user' ? (this.store.userById(owner.userId) ?? this.store.user) : this.store.user;
    // The main token's owner has the role each account gives it (administrator unless a test says otherwise).
    const roleIn = (accountId: number): AccountRole | undefined => (owner.type === 'user' ? owner.roles.get(accountId) : this.store.accounts.get(accountId)?.tokenRole);
    const memberships = accounts.flatMap((a) => {
      const role = roleIn(a.id);
      return role === undefined
        ? []
        : [{ id: a.id, name: a.name, status: 'active', active_at: null, role, permissions: role === 'administrator' ? ['administrator'] : ['agent'], availability: 'online', availability_status: 'online', auto_offline: true, custom_role_id: null, custom_role: null }];
    });
    return {
      id,
      access_token: token,
      account_id: memberships[0]?.id ?? null,
      available_name: name,
      avatar_url: '',
      confirmed: true,
      display_name: null,
      message_signature: null,
      email,
      hmac_identifier: '',
      inviter_id: null,
      name,
      provider: 'email',
      pubsub_token: randomUUID(),
      role: memberships[0]?.role ?? 'agent',
      ui_settings: {},
      uid: email,
      type: 'user',
      custom_attributes: {},
      accounts: memberships,
    };
  }
}
