import { AlarmThresholds, AuthSettings, FunctionName, MailSettings, TableSettings } from './types';

/**
 * Values shared by every stage. A stage file may override any of them; whatever differs between
 * stages is spelled out in dev.ts, staging.ts and prod.ts.
 */

/** Deployment region of every stage unless a stage says otherwise. */
export const DEFAULT_REGION = 'us-east-1';

/**
 * Memory per function in MB. register, login and change-password run argon2id (19 MiB, t=2) on
 * every call, account-email on every password reset: Lambda gives CPU in proportion to memory, so
 * they get more. account-mfa hashes no password (HMAC-SHA1 codes, AES-GCM seals, SHA-256 recovery
 * codes): the 256 MB of the other non-hashing functions.
 *
 * Measured at 128-3008 MB (emulated CPU share, `keygate-bench run --cpu-mb` then `power`): figures,
 * chosen sizes and why these stay in docs/benchmarks.md, "Memory by measurement" (tests/bench/power/).
 * The bench's account-email workload is a reset request, which hashes nothing: its size follows
 * register's curve, for the reset that does.
 */
export const MEMORY_MB: Readonly<Record<FunctionName, number>> = {
  register: 1024,
  login: 1024,
  refresh: 256,
  logout: 256,
  'logout-all': 256,
  'change-password': 1024,
  me: 256,
  'account-email': 1024,
  'account-mfa': 256,
  'well-known': 128,
  mailer: 256,
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
  mfaIssuer: 'keygate',
  mfaRecentAuthSeconds: 300,
};

/** The account rules of mail (the contract's defaults); the sender and app URL are the stage's own. */
export const MAIL_RULE_DEFAULTS: Pick<
  MailSettings,
  'requireVerifiedEmail' | 'emailVerificationTtlSeconds' | 'passwordResetTtlSeconds' | 'emailCooldownSeconds' | 'emailHourlyCap'
> = {
  requireVerifiedEmail: true,
  emailVerificationTtlSeconds: 86_400,
  passwordResetTtlSeconds: 900,
  emailCooldownSeconds: 60,
  emailHourlyCap: 5,
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
  mfaFailedPer5Minutes: 20,
  refreshReusePer5Minutes: 1,
  lambdaErrorsPer5Minutes: 5,
  lambdaThrottlesPer5Minutes: 1,
  dynamoThrottlesPer5Minutes: 1,
  sesBounceRatePercent: 2,
  sesComplaintRatePercent: 0.05,
  mailerIteratorAgeSeconds: 300,
  mailDroppedPer5Minutes: 5,
};
