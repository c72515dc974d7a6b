/**
 * Typed settings for one keygate deployment stage. Every difference between dev, staging and prod
 * lives in a value of this type (cdk/config/dev.ts, staging.ts, prod.ts); constructs receive these
 * settings as props and never read the process environment.
 */

/** The stages, in promotion order. */
export const STAGE_NAMES = ['dev', 'staging', 'prod'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/** The Lambda functions (the contract's names; one binary runs each, chosen by KEYGATE_FUNCTION). */
export const FUNCTION_NAMES = [
  'register',
  'login',
  'refresh',
  'logout',
  'logout-all',
  'change-password',
  'me',
  'account-email',
  'account-mfa',
  'well-known',
  'mailer',
  'rotate-keys',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The functions behind the API (every function but the stream-triggered mailer and the rotation function). */
export type ApiFunctionName = Exclude<FunctionName, 'mailer' | 'rotate-keys'>;

/** Functions that can carry provisioned concurrency on their `live` alias. */
export type WarmFunctionName = 'login' | 'refresh';

/** Where a stage is deployed. */
export interface DeploymentTarget {
  /**
   * AWS account id. Undefined: the stack is account-agnostic and lands in the account of the
   * credentials that deploy it (a direct `cdk deploy`) or in the pipeline's own account.
   */
  readonly account?: string;
  /** AWS region, always explicit (the WAF web ACL, the alarms and the pipeline need it). */
  readonly region: string;
}

/** Capacity of one direction (read or write) of a provisioned table. */
export interface ProvisionedCapacity {
  readonly min: number;
  readonly max: number;
  /** Target utilisation for auto scaling, in percent (20-90). */
  readonly targetUtilizationPercent: number;
}

export type TableBilling =
  | { readonly mode: 'PAY_PER_REQUEST' }
  | { readonly mode: 'PROVISIONED'; readonly read: ProvisionedCapacity; readonly write: ProvisionedCapacity };

export interface TableSettings {
  readonly billing: TableBilling;
  /**
   * AWS_MANAGED: the account's aws/dynamodb key. CUSTOMER_MANAGED: a dedicated KMS key for the
   * table, with rotation, created by the stack.
   */
  readonly encryption: 'AWS_MANAGED' | 'CUSTOMER_MANAGED';
  readonly pointInTimeRecovery: boolean;
  readonly deletionProtection: boolean;
}

export type SigningAlgorithm = 'ES256' | 'RS256' | 'EdDSA' | 'HS256';
export type PasswordCharacterClass = 'lower' | 'upper' | 'digit' | 'symbol';

/**
 * Token and password policy, passed to the functions as environment variables: each field is the
 * setting of cdk/contract.json whose flag is its name in kebab-case, checked against its range.
 */
export interface AuthSettings {
  /** JWT `aud`. */
  readonly audience: string;
  /**
   * The `client_id`s /oauth/token and /oauth/revoke accept (public clients, no secret). Undefined:
   * the audience alone, which access tokens already carry as `client_id`.
   */
  readonly oauthClientIds?: readonly string[];
  /**
   * Issuer URL (`iss`). Undefined: the API's own base URL,
   * https://<restApiId>.execute-api.<region>.<urlSuffix>/<apiStageName> (REST) or
   * https://<apiId>.execute-api.<region>.<urlSuffix> (HTTP API, `$default` stage).
   */
  readonly issuer?: string;
  readonly signingAlg: SigningAlgorithm;
  /** At most 900 (the functions refuse more). */
  readonly accessTokenTtlSeconds: number;
  readonly refreshFamilyTtlSeconds: number;
  readonly refreshReuseGraceSeconds: number;
  readonly passwordMinLength: number;
  /** At least 64. */
  readonly passwordMaxLength: number;
  readonly passwordRequireClasses: readonly PasswordCharacterClass[];
  readonly keyCacheTtlSeconds: number;
  /** What authenticator apps show beside a TOTP factor (1-64 characters, no colon). */
  readonly mfaIssuer: string;
  /** How recent a login must be to enrol or disable a TOTP factor, 30-3600 s. */
  readonly mfaRecentAuthSeconds: number;
}

export interface KeySettings {
  /** Days between automatic rotations of the signing-key secret. */
  readonly rotationDays: number;
}

export interface FunctionSettings {
  /** X86_64 by default: CI builds x86_64 only. */
  readonly architecture: 'X86_64' | 'ARM_64';
  /** Memory in MB for each function. */
  readonly memoryMb: Readonly<Record<FunctionName, number>>;
  /** Timeout of the API functions (API Gateway gives up after 29 s). */
  readonly timeoutSeconds: number;
  /** Timeout of rotate-keys (key generation plus four Secrets Manager calls). */
  readonly rotationTimeoutSeconds: number;
  /** Timeout of the mailer: one batch of the table's stream, an SES call and a delete per mail. */
  readonly mailerTimeoutSeconds: number;
  /** RUST_LOG. */
  readonly logLevel: string;
}

export interface CorsSettings {
  /** Allowed origins; an empty list turns CORS preflight handling off. */
  readonly allowOrigins: readonly string[];
  readonly maxAgeSeconds: number;
}

/**
 * What one call of a route can cost the service or yield an attacker. The route catalog
 * (cdk/lib/catalog.ts) gives every route one; its method throttle and per-IP WAF rate rule follow.
 * - expensive: runs argon2id on every call (a route that sends mail belongs here too), or trades a
 *   second-factor code for a session (a factor-keys function's endpoint that signs tokens: the
 *   login's second step /auth/mfa/verify, the activation), so a lucky guess yields a session the
 *   way a guessed password does
 * - token: cheap, but redeems a refresh token, so a lucky guess yields a session; or opens or seals
 *   a second factor (the other endpoints of a factor-keys function: a guessed code changes a factor)
 * - light: none of these (a bearer-token check, a logout, public key material)
 */
export const ROUTE_EXPOSURES = ['expensive', 'token', 'light'] as const;
export type RouteExposure = (typeof ROUTE_EXPOSURES)[number];

/** The exposures a per-IP WAF rate-based rule watches (one rule each). */
export const WAF_RATE_LIMITED_EXPOSURES = ['expensive', 'token'] as const;
export type WafRateLimitedExposure = (typeof WAF_RATE_LIMITED_EXPOSURES)[number];

/** API Gateway throttle of one method (token bucket). */
export interface ThrottleLimits {
  /** Steady-state requests per second. */
  readonly rateLimit: number;
  /** Bucket size: requests admitted at once (at least the rate). */
  readonly burstLimit: number;
}

/**
 * Which API Gateway API fronts the functions (docs/aws.md, "REST API or HTTP API"):
 * - rest: REST API with a WAF web ACL, request validation, X-Ray and problem+json gateway errors
 * - http: HTTP API, `$default` stage, no WAF and no request validation
 */
export const API_KINDS = ['rest', 'http'] as const;
export type ApiKind = (typeof API_KINDS)[number];

export interface ApiSettings {
  readonly kind: ApiKind;
  /**
   * API Gateway stage name; the last segment of the base URL and of the default issuer. REST
   * only: an HTTP API serves its `$default` stage at the root.
   */
  readonly stageName: string;
  /**
   * Stage default (the method setting for every resource and method; an HTTP API's default route
   * settings). API Gateway applies it to
   * each method on its own, not to the stage as a sum; here it bounds the methods without limits
   * of their own (CORS preflights) and is the ceiling of every route's limits.
   */
  readonly throttleRateLimit: number;
  readonly throttleBurstLimit: number;
  /**
   * Limits of each API route by its exposure, so a burst on one route cannot take the capacity
   * (Lambda concurrency, the account's API Gateway quota) the others need; expensive routes lowest.
   */
  readonly routeThrottles: Readonly<Record<RouteExposure, ThrottleLimits>>;
  readonly cors: CorsSettings;
}

export interface WafSettings {
  /**
   * Requests per source IP, per evaluation window, to the routes of each exposure before that
   * exposure's rate-based rule blocks the IP (WAF minimum 10). Counted apart, so refreshes from
   * many users behind one NAT do not spend the budget of their logins.
   */
  readonly authRateLimits: Readonly<Record<WafRateLimitedExposure, number>>;
  /** Rate-based rule evaluation window in seconds (60, 120, 300 or 600). */
  readonly authRateWindowSeconds: 60 | 120 | 300 | 600;
}

/** Provisioned concurrency of one warm function. */
export interface WarmCapacity {
  /** Provisioned concurrency during business hours. */
  readonly businessHours: number;
  /** Provisioned concurrency outside business hours (the floor; 0 allowed). */
  readonly offHours: number;
  /** Upper bound for utilisation-based scaling on top of the schedule. */
  readonly max: number;
}

export type ConcurrencySettings =
  | { readonly enabled: false }
  | {
      readonly enabled: true;
      /** IANA time zone the schedule is written in, e.g. Europe/Berlin. */
      readonly timeZone: string;
      /** Hour (0-23, local time) business hours start on weekdays. */
      readonly businessHoursStart: number;
      /** Hour (0-23, local time) business hours end on weekdays. */
      readonly businessHoursEnd: number;
      readonly capacity: Readonly<Record<WarmFunctionName, WarmCapacity>>;
    };

export interface AlarmThresholds {
  /** API 5XXError average over 5 minutes, in percent of requests. */
  readonly api5xxRatePercent: number;
  /** API p95 latency over 5 minutes, milliseconds. */
  readonly apiP95LatencyMs: number;
  /** LoginFailed count per 5 minutes. */
  readonly loginFailedPer5Minutes: number;
  /**
   * MfaFailed count per 5 minutes: wrong second-factor codes (TOTP or recovery). Each needs a
   * correct password first (or a session), so a spike means someone holds passwords and guesses codes.
   */
  readonly mfaFailedPer5Minutes: number;
  /** RefreshReuseDetected count per 5 minutes (1: any detection alarms). */
  readonly refreshReusePer5Minutes: number;
  /** Lambda Errors per function per 5 minutes. */
  readonly lambdaErrorsPer5Minutes: number;
  /** Lambda Throttles per function per 5 minutes. */
  readonly lambdaThrottlesPer5Minutes: number;
  /** DynamoDB throttled requests per 5 minutes. */
  readonly dynamoThrottlesPer5Minutes: number;
  /**
   * SES account bounce rate (Reputation.BounceRate), in percent of sent mail. SES reviews an
   * account at 5% and may pause its sending at 10%, so alarm below that.
   */
  readonly sesBounceRatePercent: number;
  /** SES account complaint rate (Reputation.ComplaintRate), in percent; SES reviews at 0.1%, pauses at 0.5%. */
  readonly sesComplaintRatePercent: number;
  /** Age of the oldest stream record the mailer has not finished, in seconds (mail delayed that long). */
  readonly mailerIteratorAgeSeconds: number;
  /**
   * Mails the mailer dropped per 5 minutes (`MailDropped`: SES refused them for good, e.g. a sandbox
   * recipient that is not verified, or they could not be opened).
   */
  readonly mailDroppedPer5Minutes: number;
}

/**
 * The stage's mail: who sends it (the SES domain identity and the sender) and the account rules
 * the API functions apply. The fields from appUrl on are settings of cdk/contract.json, passed
 * under the variable of the setting whose flag is their name in kebab-case, checked against its range.
 */
export interface MailSettings {
  /** Domain of the stage's SES identity (DKIM CNAMEs published in its DNS zone), e.g. dev.auth.example.com. */
  readonly senderDomain: string;
  /** Display name of the sender. */
  readonly fromName: string;
  /** Local part of the sender address; KEYGATE_MAIL_FROM is `fromName <fromLocalPart@senderDomain>`. */
  readonly fromLocalPart: string;
  /**
   * A subdomain of senderDomain to use as the MAIL FROM (Return-Path) domain, so SPF aligns with
   * the sender for DMARC; its MX and SPF records are stack outputs. Undefined: SES's own
   * amazonses.com MAIL FROM (DKIM alone aligns).
   */
  readonly customMailFromDomain?: string;
  /** https base URL of the app whose /verify-email and /reset-password pages the links in mails open. */
  readonly appUrl: string;
  /** Refuse logins of accounts whose email is not verified (403 email-not-verified). */
  readonly requireVerifiedEmail: boolean;
  readonly emailVerificationTtlSeconds: number;
  /** Also the mailer's maximum record age: a reset mail older than this is useless. */
  readonly passwordResetTtlSeconds: number;
  readonly emailCooldownSeconds: number;
  readonly emailHourlyCap: number;
}

export interface ObservabilitySettings {
  /** Optional email address subscribed to the alarm topic. */
  readonly alarmEmail?: string;
  readonly alarms: AlarmThresholds;
}

export interface StageSettings {
  readonly stageName: StageName;
  /** CloudFormation stack name of the service stack. */
  readonly stackName: string;
  readonly target: DeploymentTarget;
  /**
   * Production-grade data handling: table, keys, secret and log groups are RETAINed when the
   * stack is deleted (the table also carries deletion protection from `table`).
   */
  readonly retainData: boolean;
  /** CloudWatch Logs retention in days (function logs, API access logs, WAF logs). */
  readonly logRetentionDays: 30 | 60 | 90 | 120 | 180 | 365;
  readonly table: TableSettings;
  readonly keys: KeySettings;
  readonly auth: AuthSettings;
  readonly mail: MailSettings;
  readonly functions: FunctionSettings;
  readonly api: ApiSettings;
  readonly waf: WafSettings;
  readonly concurrency: ConcurrencySettings;
  readonly observability: ObservabilitySettings;
  /** Tags on every resource of the stage. */
  readonly tags: Readonly<Record<string, string>>;
}

/** CloudWatch namespace of the functions' EMF metrics (contract: Keygate/<stageName>). */
export function metricsNamespace(stage: StageName): string {
  return `Keygate/${stage}`;
}
