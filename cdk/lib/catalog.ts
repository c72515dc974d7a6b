import { ApiFunctionName, FUNCTION_NAMES, FunctionName, RouteExposure, SigningAlgorithm } from '../config';
import { CONTRACT, ContractEndpoint, ContractFunction, DynamoCall } from './contract';

export type { DynamoCall } from './contract';

/**
 * What each function is, read from cdk/contract.json (generated from the Rust code): its routes,
 * the keys it reads, whether it holds the TOTP data-key ring and the DynamoDB calls its adapter
 * makes. IAM grants, API routes, method throttles and the WAF rate rules' paths are derived from
 * this table only.
 */

export interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** The endpoint's name in keygate-http (keys the request models and operation names). */
  readonly endpoint: string;
  /** Picks the route's method throttle and WAF rate rule (see RouteExposure). */
  readonly exposure: RouteExposure;
}

export interface TableAccess {
  /** Calls on the base table. */
  readonly table: readonly DynamoCall[];
  /** Calls on the byUserId index (Query is the only one an index takes). */
  readonly byUserIdIndex: readonly 'Query'[];
}

/**
 * Which key secret a function may read, the one field its grant and environment follow:
 * 'private' for functions that sign (the signing secret), 'public' for those that only verify or
 * publish the JWKS (the public key set rotate-keys writes), 'none' for those whose endpoints use no
 * key, 'rotate' for rotate-keys (rotation of the signing secret, write of the public set). It is the
 * most any of the function's endpoints needs in keygate-http (`Endpoint::key_access`).
 */
export type KeyAccess = 'private' | 'public' | 'none' | 'rotate';

/**
 * What `access` reads under the stage's algorithm: an HS256 key is shared, has no public form, and
 * the public key set holds nothing for it, so with that explicit opt-in verifiers read the signing
 * secret (the Rust shell applies the same rule: `KeyAccess::under` in handlers/http/src/lib.rs).
 */
export function keyAccessUnder(access: KeyAccess, alg: SigningAlgorithm): KeyAccess {
  return access === 'public' && alg === 'HS256' ? 'private' : access;
}

export interface FunctionSpec {
  readonly name: FunctionName;
  readonly description: string;
  readonly routes: readonly Route[];
  readonly keys: KeyAccess;
  /**
   * Reads the TOTP data-key ring (the contract's `factor_keys`): the one field the ring secret's
   * grant and KEYGATE_FACTOR_KEYS_SECRET_ID follow; false for every function that is not told of it.
   */
  readonly factorKeys: boolean;
  /** Undefined: no table access at all (and no table name in its environment). */
  readonly tableAccess?: TableAccess;
}

/**
 * The endpoints that queue a mail to an address the caller names, on every call that passes the
 * per-account cooldown: each costs an SES send and, aimed at addresses that bounce, the account's
 * sending reputation. The contract does not flag them (it flags hashing), so they are named here
 * and checked against it. register mails too (the notice to the owner of a taken address) but
 * hashes anyway.
 */
export const MAIL_SENDING_ENDPOINTS: readonly string[] = ['email_verification', 'password_forgot'];

/**
 * Hashing a password or sending a mail makes a route expensive; one that signs tokens from a
 * credential without a hash (refresh) is the token class; the rest are light.
 *
 * The endpoints of a function holding the factor keys (`factor_keys`) check or change second
 * factors: every one is rate-limited at least as the token class (a guessed code disables a factor
 * or yields new recovery codes), and one that also signs tokens (keys 'private') trades a code for a
 * session as a login trades a password, so it is expensive with the login: the login's second step
 * (/auth/mfa/verify, reached without a bearer token and guessed at by whoever holds a password) and
 * the activation. The contract flags the function, not each endpoint, so a function mixing factor
 * endpoints with others would only rate-limit the others harder.
 */
function exposureOf(endpoint: ContractEndpoint, f: ContractFunction): RouteExposure {
  const signs = endpoint.keys === 'private';
  if (endpoint.hashes_password || MAIL_SENDING_ENDPOINTS.includes(endpoint.name) || (f.factor_keys && signs)) {
    return 'expensive';
  }
  return signs || f.factor_keys ? 'token' : 'light';
}

function spec(f: ContractFunction): FunctionSpec {
  const routes = f.endpoints.map((e) => ({ method: e.method, path: e.path, endpoint: e.name, exposure: exposureOf(e, f) }));
  const what = routes.map((r) => `${r.method} ${r.path}`).join(', ');
  return {
    name: f.name as FunctionName,
    description: what ? `${what}: ${f.summary}` : f.summary,
    routes,
    keys: f.keys,
    factorKeys: f.factor_keys,
    tableAccess: f.dynamodb && { table: f.dynamodb.table, byUserIdIndex: f.dynamodb.by_user_id_index },
  };
}

function specs(): Record<FunctionName, FunctionSpec> {
  const names = CONTRACT.functions.map((f) => f.name);
  if (names.join() !== FUNCTION_NAMES.join()) {
    throw new Error(`cdk/contract.json lists the functions ${names.join(', ')}; cdk/config/types.ts FUNCTION_NAMES has ${FUNCTION_NAMES.join(', ')}`);
  }
  for (const f of CONTRACT.functions) {
    // An older contract without the field would otherwise read as "no ring" everywhere.
    if (typeof f.factor_keys !== 'boolean') {
      throw new Error(`cdk/contract.json: function ${f.name} has no boolean factor_keys (regenerate the contract)`);
    }
  }
  const endpoints = CONTRACT.functions.flatMap((f) => f.endpoints.map((e) => e.name));
  for (const name of MAIL_SENDING_ENDPOINTS) {
    if (!endpoints.includes(name)) {
      throw new Error(`cdk/lib/catalog.ts MAIL_SENDING_ENDPOINTS names ${name}, which cdk/contract.json does not list`);
    }
  }
  return Object.fromEntries(CONTRACT.functions.map((f) => [f.name, spec(f)])) as Record<FunctionName, FunctionSpec>;
}

export const FUNCTION_SPECS: Readonly<Record<FunctionName, FunctionSpec>> = specs();

/** The functions behind the API: every function with an endpoint (all but mailer and rotate-keys). */
export const API_FUNCTIONS: readonly ApiFunctionName[] = FUNCTION_NAMES.filter((n): n is ApiFunctionName => FUNCTION_SPECS[n].routes.length > 0);

/**
 * IAM actions behind each DynamoDB call. TransactWriteItems has no IAM action of its own: IAM
 * checks each item operation inside the transaction (Put, Update, ConditionCheck).
 */
export function iamActionsFor(calls: readonly DynamoCall[]): string[] {
  const actions = new Set<string>();
  for (const call of calls) {
    if (call === 'TransactWriteItems') {
      ['PutItem', 'UpdateItem', 'ConditionCheckItem'].forEach((a) => actions.add(`dynamodb:${a}`));
    } else {
      actions.add(`dynamodb:${call}`);
    }
  }
  return [...actions].sort();
}

/** Every API route with the function behind it, in catalog order. */
export function apiRoutes(): { readonly name: ApiFunctionName; readonly route: Route }[] {
  return API_FUNCTIONS.flatMap((name) => FUNCTION_SPECS[name].routes.map((route) => ({ name, route })));
}

/** The route of the endpoint named `endpoint` (keygate-http's `Endpoint::name`); throws when the contract has none. */
export function routeOf(endpoint: string): Route {
  const found = apiRoutes().find(({ route }) => route.endpoint === endpoint);
  if (!found) {
    throw new Error(`cdk/contract.json has no endpoint named ${endpoint}`);
  }
  return found.route;
}
