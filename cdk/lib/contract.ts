import contractJson from '../contract.json';

/**
 * cdk/contract.json, generated from the Rust code (handlers/lambda/src/contract.rs) and checked by its
 * golden test: the functions and their endpoints, the settings with their ranges, the metric names.
 * The CDK takes routes, grants, environment names and metric names from here only.
 */

export type DynamoCall = 'GetItem' | 'PutItem' | 'UpdateItem' | 'DeleteItem' | 'Query' | 'BatchWriteItem' | 'TransactWriteItems';
export type EndpointKeys = 'none' | 'public' | 'private';

export interface ContractEndpoint {
  /** The endpoint's name in keygate-http (`Endpoint::name`). */
  readonly name: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly keys: EndpointKeys;
  /** Runs argon2id: the routes throttled and rate-limited hardest. */
  readonly hashes_password: boolean;
}

export interface ContractFunction {
  readonly name: string;
  readonly summary: string;
  /** The most its endpoints need; 'rotate' for rotate-keys. */
  readonly keys: EndpointKeys | 'rotate';
  readonly endpoints: readonly ContractEndpoint[];
  /**
   * Its endpoints seal or open TOTP secrets (keygate-http's `Endpoint::uses_factor_keys`): the
   * function reads the data-key ring at init (KEYGATE_FACTOR_KEYS_SECRET_ID) and fails without it.
   * No other function is told of the ring or granted it.
   */
  readonly factor_keys: boolean;
  /** Absent: no table access at all. */
  readonly dynamodb?: { readonly table: readonly DynamoCall[]; readonly by_user_id_index: readonly 'Query'[] };
}

export interface ContractSetting {
  /**
   * 'core': every function and the local server; 'mail': the mail senders (the mailer, the local
   * server); 'aws': the AWS adapters; 'lambda': the Lambda shell.
   */
  readonly scope: 'core' | 'mail' | 'aws' | 'lambda';
  readonly env: string;
  /** The local server's flag; its camelCase form names the CDK value that sets it. */
  readonly flag: string;
  readonly default: string | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly help: string;
}

export interface Contract {
  /** The cargo package (and binary) every function runs; KEYGATE_FUNCTION picks the function. */
  readonly binary: string;
  readonly functions: readonly ContractFunction[];
  readonly settings: readonly ContractSetting[];
  readonly metrics: {
    readonly counters: readonly string[];
    readonly audit_events: readonly { readonly event: string; readonly metric: string }[];
    readonly latency: string;
  };
}

export const CONTRACT: Contract = contractJson as Contract;

/** `access-token-ttl-seconds` -> `accessTokenTtlSeconds`. */
export function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The settings by the camelCase name of their flag: how a stage value finds its variable. */
export const SETTINGS_BY_NAME: ReadonlyMap<string, ContractSetting> = new Map(CONTRACT.settings.map((s) => [camel(s.flag), s]));

/** The setting a CDK value named `name` sets; throws when the contract has none (renamed in Rust?). */
export function settingNamed(name: string): ContractSetting {
  const setting = SETTINGS_BY_NAME.get(name);
  if (!setting) {
    throw new Error(`cdk/contract.json has no setting whose flag is ${name} in kebab-case`);
  }
  return setting;
}

/** A metric the functions emit, checked against the contract (a Rust rename fails the synth). */
export function metricName(name: string): string {
  const m = CONTRACT.metrics;
  if (!m.counters.includes(name) && m.latency !== name) {
    throw new Error(`cdk/contract.json lists no metric ${name}`);
  }
  return name;
}

/**
 * The environment variables for `values` (CDK values named like the settings' flags in camelCase):
 * numbers as decimal strings, lists comma-separated. A value without a setting is an error, so a
 * variable the functions would ignore is never set.
 */
export function environmentFor(values: object): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) {
      env[settingNamed(name).env] = Array.isArray(value) ? value.join(',') : String(value);
    }
  }
  return env;
}

/** Problems of numeric `values` outside their settings' ranges (the ranges the functions enforce). */
export function outOfRange(values: object): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    const s = SETTINGS_BY_NAME.get(name);
    if (!s || s.min === null || s.max === null || typeof value !== 'number') {
      continue;
    }
    if (!Number.isInteger(value) || value < s.min || value > s.max) {
      problems.push(`${name} (${s.env}) must be a whole number ${s.min}..${s.max}, got ${value}`);
    }
  }
  return problems;
}
