import { outOfRange } from '../lib/contract';
import { dev } from './dev';
import { PIPELINE_DEFAULTS, PipelineSettings, SourceSettings } from './pipeline';
import { prod } from './prod';
import { staging } from './staging';
import { API_KINDS, ROUTE_EXPOSURES, STAGE_NAMES, StageName, StageSettings, ThrottleLimits, WAF_RATE_LIMITED_EXPOSURES } from './types';

export * from './types';
export * from './pipeline';

const STAGES: Readonly<Record<StageName, StageSettings>> = { dev, staging, prod };

/**
 * Deployment identity that is not part of the committed settings: account ids, the alarm email,
 * the repository connection. The app entry (cdk/bin) fills it from CDK context.
 */
export interface DeploymentOverrides {
  readonly accounts?: Partial<Record<StageName | 'pipeline', string>>;
  readonly alarmEmails?: Partial<Record<StageName, string>>;
  readonly source?: Partial<SourceSettings>;
}

/** Settings of one stage, with the deployment overrides applied and checked. */
export function stageSettings(name: StageName, overrides: DeploymentOverrides = {}): StageSettings {
  const base = STAGES[name];
  const account = overrides.accounts?.[name] ?? base.target.account;
  const alarmEmail = overrides.alarmEmails?.[name] ?? base.observability.alarmEmail;
  const settings: StageSettings = {
    ...base,
    target: { ...base.target, account },
    observability: { ...base.observability, alarmEmail },
  };
  validateStageSettings(settings);
  return settings;
}

/**
 * The stages as the pipeline deploys them: a stage without an account of its own goes to the
 * pipeline's account, so every deploy action names a concrete account.
 */
export function pipelineStageSettings(pipeline: PipelineSettings, overrides: DeploymentOverrides = {}): StageSettings[] {
  return allStageSettings(overrides).map((s) => ({ ...s, target: { ...s.target, account: s.target.account ?? pipeline.target.account } }));
}

/** All stages in promotion order. */
export function allStageSettings(overrides: DeploymentOverrides = {}): StageSettings[] {
  return STAGE_NAMES.map((name) => stageSettings(name, overrides));
}

/**
 * Pipeline settings, or undefined when the repository connection is not configured (the
 * pipeline cannot exist without a source).
 */
export function pipelineSettings(overrides: DeploymentOverrides = {}): PipelineSettings | undefined {
  const source = overrides.source ?? {};
  if (!source.connectionArn && !source.repository) {
    return undefined;
  }
  if (!source.connectionArn || !source.repository) {
    throw new Error('pipeline source needs both a connection ARN and a repository (owner/name)');
  }
  if (!/^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection\/[0-9a-f-]+$/.test(source.connectionArn)) {
    throw new Error(`not a CodeStar/CodeConnections connection ARN: ${source.connectionArn}`);
  }
  if (!/^[^/\s]+\/[^\s]+$/.test(source.repository)) {
    throw new Error(`repository must be owner/name, got ${source.repository}`);
  }
  const account = overrides.accounts?.pipeline ?? PIPELINE_DEFAULTS.target.account;
  if (!account || !/^\d{12}$/.test(account)) {
    throw new Error('the pipeline needs the 12-digit account id it lives in (stages without their own account deploy there)');
  }
  const { branch, ...rest } = PIPELINE_DEFAULTS;
  return {
    ...rest,
    target: { ...rest.target, account },
    source: {
      connectionArn: source.connectionArn,
      repository: source.repository,
      branch: source.branch ?? branch,
    },
  };
}

function check(condition: boolean, stage: string, message: string): void {
  if (!condition) {
    throw new Error(`invalid settings for stage ${stage}: ${message}`);
  }
}

/** Rejects settings the service or AWS would refuse, at synth time rather than at deploy time. */
export function validateStageSettings(s: StageSettings): void {
  const n = s.stageName;
  check(s.target.account === undefined || /^\d{12}$/.test(s.target.account), n, 'account must be 12 digits');
  check(/^[a-z]{2}(-[a-z]+)+-\d$/.test(s.target.region), n, `region ${s.target.region} is not a region name`);
  // The functions' own ranges (cdk/contract.json), so a value they would refuse fails the synth.
  for (const problem of [...outOfRange(s.auth), ...outOfRange(s.mail)]) {
    check(false, n, problem);
  }
  validateMail(s);
  // The rule KEYGATE_MFA_ISSUER's parser applies (handlers/core/src/config.rs).
  check(s.auth.mfaIssuer.length >= 1 && [...s.auth.mfaIssuer].length <= 64 && !s.auth.mfaIssuer.includes(':'), n, 'MFA issuer must be 1-64 characters without a colon');
  check(s.auth.passwordMinLength <= s.auth.passwordMaxLength, n, 'password min length must not exceed the max length');
  check(s.auth.refreshFamilyTtlSeconds > s.auth.accessTokenTtlSeconds, n, 'refresh family TTL must exceed the access token TTL');
  check(s.keys.rotationDays >= 1 && s.keys.rotationDays <= 1000, n, 'rotation days must be 1..1000');
  for (const [fn, mb] of Object.entries(s.functions.memoryMb)) {
    check(Number.isInteger(mb) && mb >= 128 && mb <= 10240, n, `memory of ${fn} must be 128..10240 MB`);
  }
  check(s.functions.timeoutSeconds >= 1 && s.functions.timeoutSeconds <= 29, n, 'API function timeout must be 1..29 s');
  check(s.functions.rotationTimeoutSeconds >= 1 && s.functions.rotationTimeoutSeconds <= 900, n, 'rotation timeout must be 1..900 s');
  check(s.functions.mailerTimeoutSeconds >= 1 && s.functions.mailerTimeoutSeconds <= 900, n, 'mailer timeout must be 1..900 s');
  check((API_KINDS as readonly string[]).includes(s.api.kind), n, `API kind must be one of ${API_KINDS.join(', ')}`);
  check(/^[A-Za-z0-9_-]+$/.test(s.api.stageName), n, 'API stage name may hold letters, digits, - and _');
  validateThrottles(s);
  for (const exposure of WAF_RATE_LIMITED_EXPOSURES) {
    const limit = s.waf.authRateLimits[exposure];
    check(Number.isInteger(limit) && limit >= 10 && limit <= 2_000_000_000, n, `WAF rate limit of ${exposure} routes must be an integer 10..2e9`);
  }
  check([60, 120, 300, 600].includes(s.waf.authRateWindowSeconds), n, 'WAF evaluation window must be 60, 120, 300 or 600 s');
  if (s.table.billing.mode === 'PROVISIONED') {
    for (const c of [s.table.billing.read, s.table.billing.write]) {
      check(c.min >= 1 && c.max >= c.min, n, 'provisioned capacity needs 1 <= min <= max');
      check(c.targetUtilizationPercent >= 20 && c.targetUtilizationPercent <= 90, n, 'target utilisation must be 20..90');
    }
  }
  if (s.concurrency.enabled) {
    const c = s.concurrency;
    check(c.businessHoursStart >= 0 && c.businessHoursStart < c.businessHoursEnd && c.businessHoursEnd <= 23, n, 'business hours must be start < end within 0..23');
    check(/^[A-Za-z]+(\/[A-Za-z0-9_+-]+)+$|^UTC$/.test(c.timeZone), n, `time zone ${c.timeZone} is not an IANA name`);
    for (const [fn, cap] of Object.entries(c.capacity)) {
      check(cap.offHours >= 0 && cap.businessHours >= cap.offHours && cap.max >= cap.businessHours && cap.max >= 1, n, `capacity of ${fn} needs 0 <= offHours <= businessHours <= max`);
    }
  }
  const alarms = s.observability.alarms;
  check(Number.isInteger(alarms.mfaFailedPer5Minutes) && alarms.mfaFailedPer5Minutes >= 1, n, 'MFA-failed alarm must be a whole number, at least 1');
  if (s.observability.alarmEmail !== undefined) {
    check(/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(s.observability.alarmEmail), n, 'alarm email is not an address');
  }
  if (s.auth.issuer !== undefined) {
    check(/^https:\/\/[^\s]+$/.test(s.auth.issuer) && !s.auth.issuer.endsWith('/'), n, 'custom issuer must be an https URL without a trailing slash');
  }
}

/** A DNS name of at least two labels, lower case (how SES and the DKIM records spell it). */
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/**
 * The sender must be an address of the stage's SES identity and a well-formed `Name <address>`
 * (the mailer refuses anything else at init); the app URL is where the links in mails point, so
 * https and without a trailing slash (the functions append /verify-email and /reset-password).
 */
function validateMail(s: StageSettings): void {
  const n = s.stageName;
  const m = s.mail;
  const a = s.observability.alarms;
  check(DOMAIN.test(m.senderDomain), n, `mail sender domain ${m.senderDomain} is not a lower-case DNS name`);
  if (m.customMailFromDomain !== undefined) {
    check(DOMAIN.test(m.customMailFromDomain) && m.customMailFromDomain.endsWith(`.${m.senderDomain}`), n, `custom MAIL FROM domain must be a subdomain of ${m.senderDomain}`);
  }
  check(/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/.test(m.fromLocalPart) && m.fromLocalPart.length <= 64, n, 'mail from local part is not a plain local part');
  check(/^[^<>"\\\r\n]*[^<>"\\\r\n\s][^<>"\\\r\n]*$/.test(m.fromName), n, 'mail from name must be non-empty without <, >, quotes, backslashes or line breaks');
  check(/^https:\/\/[a-z0-9.-]+(:\d+)?(\/[^\s?#]*)?$/.test(m.appUrl) && !m.appUrl.endsWith('/'), n, 'mail app URL must be an https URL without a query, fragment or trailing slash');
  check(a.sesBounceRatePercent > 0 && a.sesBounceRatePercent < 5, n, 'SES bounce-rate alarm must be above 0 and below 5% (where SES reviews the account)');
  check(a.sesComplaintRatePercent > 0 && a.sesComplaintRatePercent < 0.1, n, 'SES complaint-rate alarm must be above 0 and below 0.1% (where SES reviews the account)');
  check(Number.isInteger(a.mailerIteratorAgeSeconds) && a.mailerIteratorAgeSeconds >= 60, n, 'mailer iterator-age alarm must be a whole number of seconds, at least 60');
  check(Number.isInteger(a.mailDroppedPer5Minutes) && a.mailDroppedPer5Minutes >= 1, n, 'mail-dropped alarm must be a whole number, at least 1');
}

/** KEYGATE_MAIL_FROM of a stage: `Name <local@domain>`. */
export function mailFrom(m: StageSettings['mail']): string {
  return `${m.fromName} <${m.fromLocalPart}@${m.senderDomain}>`;
}

/**
 * Throttles API Gateway would take and that keep their purpose: a positive rate, a whole burst no
 * smaller than the rate (else the bucket never holds a second's worth), every route within the
 * stage default, and the expensive routes no higher than any cheaper one.
 */
function validateThrottles(s: StageSettings): void {
  const n = s.stageName;
  const api = s.api;
  const sound = (what: string, t: ThrottleLimits): void => {
    check(Number.isFinite(t.rateLimit) && t.rateLimit > 0, n, `${what} throttle rate must be positive`);
    check(Number.isInteger(t.burstLimit) && t.burstLimit >= 1, n, `${what} throttle burst must be a positive integer`);
    check(t.burstLimit >= t.rateLimit, n, `${what} throttle burst must be at least its rate`);
  };
  sound('stage', { rateLimit: api.throttleRateLimit, burstLimit: api.throttleBurstLimit });
  for (const exposure of ROUTE_EXPOSURES) {
    const t = api.routeThrottles[exposure];
    sound(`${exposure} route`, t);
    check(t.rateLimit <= api.throttleRateLimit && t.burstLimit <= api.throttleBurstLimit, n, `${exposure} route throttle must not exceed the stage default`);
  }
  const expensive = api.routeThrottles.expensive;
  for (const exposure of ROUTE_EXPOSURES.filter((e) => e !== 'expensive')) {
    const cheaper = api.routeThrottles[exposure];
    check(expensive.rateLimit <= cheaper.rateLimit && expensive.burstLimit <= cheaper.burstLimit, n, `expensive route throttle must not exceed the ${exposure} route throttle`);
  }
}
