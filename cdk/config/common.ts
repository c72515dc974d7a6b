import { AlarmThresholds, AuthSettings, FunctionName, TableSettings } from './types';

/**
 * Values shared by every stage. A stage file may override any of them; whatever differs between
 * stages is spelled out in dev.ts, staging.ts and prod.ts.
 */

/** Deployment region of every stage unless a stage says otherwise. */
export const DEFAULT_REGION = 'us-east-1';

/**
 * Memory per function in MB. register, login and change-password run argon2id (19 MiB, t=2) on
 * every call: Lambda gives CPU in proportion to memory, so they get more.
 */
export const MEMORY_MB: Readonly<Record<FunctionName, number>> = {
  register: 1024,
  login: 1024,
  refresh: 256,
  logout: 256,
  'logout-all': 256,
  'change-password': 1024,
  me: 256,
  'well-known': 128,
  'rotate-keys': 512,
};

/** Token and password policy defaults (the contract's defaults). */
export const AUTH_DEFAULTS: AuthSettings = {
  audience: 'keygate',
  signingAlg: 'ES256',
  accessTokenTtlSeconds: 900,
  refreshFamilyTtlSeconds: 2_592_000,
  refreshReuseGraceSeconds: 10,
  passwordMinLength: 15,
  passwordMaxLength: 128,
  passwordRequireClasses: [],
  keyCacheTtlSeconds: 300,
};

/** On-demand, PITR, customer-managed encryption: only deletion protection differs by stage. */
export const ON_DEMAND_TABLE: Omit<TableSettings, 'deletionProtection'> = {
  billing: { mode: 'PAY_PER_REQUEST' },
  encryption: 'CUSTOMER_MANAGED',
  pointInTimeRecovery: true,
};

export const ALARM_DEFAULTS: AlarmThresholds = {
  api5xxRatePercent: 1,
  apiP95LatencyMs: 1000,
  loginFailedPer5Minutes: 100,
  refreshReusePer5Minutes: 1,
  lambdaErrorsPer5Minutes: 5,
  lambdaThrottlesPer5Minutes: 1,
  dynamoThrottlesPer5Minutes: 1,
};
