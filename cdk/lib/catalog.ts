import { ApiFunctionName, FunctionName } from '../config';

/**
 * What each function is, as fixed by the integration contract: its routes and the DynamoDB calls
 * its adapter makes. IAM grants and API routes are derived from this table only.
 */

export type DynamoCall = 'GetItem' | 'PutItem' | 'UpdateItem' | 'Query' | 'BatchWriteItem' | 'TransactWriteItems';

export interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
}

export interface TableAccess {
  /** Calls on the base table. */
  readonly table: readonly DynamoCall[];
  /** Calls on the byUserId index (Query is the only one an index takes). */
  readonly byUserIdIndex: readonly 'Query'[];
}

export interface FunctionSpec {
  readonly name: FunctionName;
  readonly description: string;
  readonly routes: readonly Route[];
  /** Undefined: no table access at all (no KEYGATE_TABLE_NAME either). */
  readonly tableAccess?: TableAccess;
}

export const FUNCTION_SPECS: Readonly<Record<FunctionName, FunctionSpec>> = {
  register: {
    name: 'register',
    description: 'POST /auth/register: create a user',
    routes: [{ method: 'POST', path: '/auth/register' }],
    tableAccess: { table: ['PutItem'], byUserIdIndex: [] },
  },
  login: {
    name: 'login',
    description: 'POST /auth/login: verify a password, issue tokens',
    routes: [{ method: 'POST', path: '/auth/login' }],
    tableAccess: { table: ['GetItem', 'UpdateItem', 'PutItem', 'TransactWriteItems'], byUserIdIndex: [] },
  },
  refresh: {
    name: 'refresh',
    description: 'POST /auth/refresh: rotate a refresh token',
    routes: [{ method: 'POST', path: '/auth/refresh' }],
    tableAccess: { table: ['TransactWriteItems', 'GetItem', 'Query', 'BatchWriteItem'], byUserIdIndex: [] },
  },
  logout: {
    name: 'logout',
    description: 'POST /auth/logout: revoke one refresh-token family',
    routes: [{ method: 'POST', path: '/auth/logout' }],
    tableAccess: { table: ['GetItem', 'Query', 'BatchWriteItem'], byUserIdIndex: [] },
  },
  'logout-all': {
    name: 'logout-all',
    description: 'POST /auth/logout-all: revoke every session of the caller',
    routes: [{ method: 'POST', path: '/auth/logout-all' }],
    tableAccess: { table: ['Query', 'GetItem', 'UpdateItem', 'BatchWriteItem'], byUserIdIndex: ['Query'] },
  },
  'change-password': {
    name: 'change-password',
    description: 'POST /auth/password: change the password, revoke sessions, issue tokens',
    routes: [{ method: 'POST', path: '/auth/password' }],
    tableAccess: {
      table: ['GetItem', 'UpdateItem', 'PutItem', 'TransactWriteItems', 'Query', 'BatchWriteItem'],
      byUserIdIndex: ['Query'],
    },
  },
  me: {
    name: 'me',
    description: 'GET /auth/me: the caller profile',
    routes: [{ method: 'GET', path: '/auth/me' }],
    tableAccess: { table: ['GetItem'], byUserIdIndex: ['Query'] },
  },
  'well-known': {
    name: 'well-known',
    description: 'GET /.well-known/jwks.json and /.well-known/openid-configuration',
    routes: [
      { method: 'GET', path: '/.well-known/jwks.json' },
      { method: 'GET', path: '/.well-known/openid-configuration' },
    ],
  },
  'rotate-keys': {
    name: 'rotate-keys',
    description: 'Secrets Manager rotation of the signing-key set',
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
