import { ApiFunctionName, FunctionName, RouteExposure, SigningAlgorithm } from '../config';

/**
 * What each function is, as fixed by the integration contract: its routes and the DynamoDB calls
 * its adapter makes. IAM grants, API routes, method throttles and the WAF rate rules' paths are
 * derived from this table only.
 */

export type DynamoCall = 'GetItem' | 'PutItem' | 'UpdateItem' | 'Query' | 'BatchWriteItem' | 'TransactWriteItems';

export interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
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
  /** Undefined: no table access at all (no KEYGATE_TABLE_NAME either). */
  readonly tableAccess?: TableAccess;
}

export const FUNCTION_SPECS: Readonly<Record<FunctionName, FunctionSpec>> = {
  register: {
    name: 'register',
    description: 'POST /auth/register: create a user',
    keys: 'none',
    routes: [{ method: 'POST', path: '/auth/register', exposure: 'expensive' }],
    tableAccess: { table: ['PutItem'], byUserIdIndex: [] },
  },
  login: {
    name: 'login',
    description: 'POST /auth/login: verify a password, issue tokens',
    keys: 'private',
    routes: [{ method: 'POST', path: '/auth/login', exposure: 'expensive' }],
    tableAccess: { table: ['GetItem', 'UpdateItem', 'TransactWriteItems'], byUserIdIndex: [] },
  },
  refresh: {
    name: 'refresh',
    description: 'POST /auth/refresh: rotate a refresh token',
    keys: 'private',
    routes: [{ method: 'POST', path: '/auth/refresh', exposure: 'token' }],
    tableAccess: { table: ['TransactWriteItems', 'GetItem', 'Query', 'BatchWriteItem'], byUserIdIndex: [] },
  },
  logout: {
    name: 'logout',
    description: 'POST /auth/logout: revoke one refresh-token family',
    keys: 'none',
    routes: [{ method: 'POST', path: '/auth/logout', exposure: 'light' }],
    tableAccess: { table: ['GetItem', 'Query', 'BatchWriteItem'], byUserIdIndex: [] },
  },
  'logout-all': {
    name: 'logout-all',
    description: 'POST /auth/logout-all: revoke every session of the caller',
    keys: 'public',
    routes: [{ method: 'POST', path: '/auth/logout-all', exposure: 'light' }],
    tableAccess: { table: ['GetItem', 'UpdateItem'], byUserIdIndex: ['Query'] },
  },
  'change-password': {
    name: 'change-password',
    description: 'POST /auth/password: change the password, revoke sessions, issue tokens',
    keys: 'private',
    routes: [{ method: 'POST', path: '/auth/password', exposure: 'expensive' }],
    tableAccess: {
      table: ['GetItem', 'UpdateItem', 'TransactWriteItems'],
      byUserIdIndex: ['Query'],
    },
  },
  me: {
    name: 'me',
    description: 'GET /auth/me: the caller profile',
    keys: 'public',
    routes: [{ method: 'GET', path: '/auth/me', exposure: 'light' }],
    tableAccess: { table: ['GetItem'], byUserIdIndex: ['Query'] },
  },
  'well-known': {
    name: 'well-known',
    description: 'GET /.well-known/jwks.json and /.well-known/openid-configuration',
    keys: 'public',
    routes: [
      { method: 'GET', path: '/.well-known/jwks.json', exposure: 'light' },
      { method: 'GET', path: '/.well-known/openid-configuration', exposure: 'light' },
    ],
  },
  'rotate-keys': {
    name: 'rotate-keys',
    description: 'Secrets Manager rotation of the signing-key set',
    keys: 'rotate',
    routes: [],
  },
};

export const API_FUNCTIONS: readonly ApiFunctionName[] = [
  'register',
  'login',
  'refresh',
  'logout',
  'logout-all',
  'change-password',
  'me',
  'well-known',
];

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
