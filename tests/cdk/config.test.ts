import { ROUTE_EXPOSURES, STAGE_NAMES, mailFrom, StageSettings, ThrottleLimits, allStageSettings, metricsNamespace, pipelineSettings, pipelineStageSettings, stageSettings, validateStageSettings } from '../../cdk/config';
import { validationOverrides } from './helpers';

describe('stage settings', () => {
  test('three stages in promotion order, each valid', () => {
    expect(allStageSettings().map((s) => s.stageName)).toEqual(['dev', 'staging', 'prod']);
    for (const name of STAGE_NAMES) {
      expect(() => validateStageSettings(stageSettings(name))).not.toThrow();
    }
  });

  test('every stage fronts its functions with a REST API by default', () => {
    expect(allStageSettings().map((s) => s.api.kind)).toEqual(['rest', 'rest', 'rest']);
  });

  test('every function is x86_64 by default in every stage', () => {
    for (const s of allStageSettings()) {
      expect(s.functions.architecture).toBe('X86_64');
    }
  });

  test('account-mfa hashes no password: the memory of the other non-hashing API functions, in every stage', () => {
    for (const s of allStageSettings()) {
      const m = s.functions.memoryMb;
      expect(m['account-mfa']).toBe(m.refresh);
      expect(m['account-mfa']).toBe(m.me);
      expect(m['account-mfa']).toBeLessThan(m.login);
    }
  });

  test('the metrics namespace is Keygate/<stage>', () => {
    expect(metricsNamespace('prod')).toBe('Keygate/prod');
  });

  test('prod differs from dev where the contract says it must', () => {
    const dev = stageSettings('dev');
    const prod = stageSettings('prod');
    expect(dev.retainData).toBe(false);
    expect(prod.retainData).toBe(true);
    expect(dev.table.deletionProtection).toBe(false);
    expect(prod.table.deletionProtection).toBe(true);
    expect(dev.concurrency.enabled).toBe(false);
    expect(prod.concurrency.enabled).toBe(true);
    expect(dev.logRetentionDays).toBeLessThan(prod.logRetentionDays);
    expect(dev.api.throttleRateLimit).toBeLessThan(prod.api.throttleRateLimit);
  });

  test('retention stays within 30..90 days', () => {
    for (const s of allStageSettings()) {
      expect(s.logRetentionDays).toBeGreaterThanOrEqual(30);
      expect(s.logRetentionDays).toBeLessThanOrEqual(90);
    }
  });

  test('overrides set accounts and the alarm email', () => {
    const s = stageSettings('staging', { accounts: { staging: '222222222222' }, alarmEmails: { staging: 'ops@example.com' } });
    expect(s.target.account).toBe('222222222222');
    expect(s.observability.alarmEmail).toBe('ops@example.com');
  });

  test.each([
    ['an access token TTL above 900 s', { auth: { ...stageSettings('dev').auth, accessTokenTtlSeconds: 901 } }],
    ['a password max length below 64', { auth: { ...stageSettings('dev').auth, passwordMaxLength: 63 } }],
    ['a WAF limit below 10', { waf: { ...stageSettings('dev').waf, authRateLimits: { expensive: 5, token: 300 } } }],
    ['a fractional WAF limit', { waf: { ...stageSettings('dev').waf, authRateLimits: { expensive: 100, token: 300.5 } } }],
    ['a WAF window AWS does not offer', { waf: { ...stageSettings('dev').waf, authRateWindowSeconds: 30 as 60 } }],
    ['a malformed account', { target: { account: '12', region: 'us-east-1' } }],
    ['an API function timeout above 29 s', { functions: { ...stageSettings('dev').functions, timeoutSeconds: 30 } }],
    ['an API kind API Gateway does not have', { api: { ...stageSettings('dev').api, kind: 'websocket' as 'rest' } }],
    ['a mailer timeout above 900 s', { functions: { ...stageSettings('dev').functions, mailerTimeoutSeconds: 901 } }],
    ['an MFA issuer with a colon', { auth: { ...stageSettings('dev').auth, mfaIssuer: 'acme:prod' } }],
    ['a recent-login window below 30 s', { auth: { ...stageSettings('dev').auth, mfaRecentAuthSeconds: 10 } }],
    ['an MFA-failed alarm at 0', { observability: { alarms: { ...stageSettings('dev').observability.alarms, mfaFailedPer5Minutes: 0 } } }],
  ])('refuses %s', (_what, change) => {
    expect(() => validateStageSettings({ ...stageSettings('dev'), ...change })).toThrow(/invalid settings/);
  });
});

describe('mail settings', () => {
  const dev = stageSettings('dev');
  const withMail = (change: Partial<StageSettings['mail']>): StageSettings => ({ ...dev, mail: { ...dev.mail, ...change } });
  const withAlarms = (change: Partial<StageSettings['observability']['alarms']>): StageSettings => ({
    ...dev,
    observability: { ...dev.observability, alarms: { ...dev.observability.alarms, ...change } },
  });

  test('every stage sends from its own domain, links to an https app, and requires verified email', () => {
    const stages = allStageSettings();
    for (const s of stages) {
      expect(s.mail.appUrl).toMatch(/^https:\/\//);
      expect(s.mail.requireVerifiedEmail).toBe(true);
      expect(mailFrom(s.mail)).toBe(`keygate <no-reply@${s.mail.senderDomain}>`);
    }
    expect(new Set(stages.map((s) => s.mail.senderDomain)).size).toBe(stages.length);
    expect(stageSettings('prod').mail.senderDomain).toBe('auth.example.com');
  });

  test.each([
    ['a sender domain with one label', { senderDomain: 'localhost' }],
    ['a sender domain in upper case', { senderDomain: 'Auth.Example.com' }],
    ['a sender domain with a scheme', { senderDomain: 'https://auth.example.com' }],
    ['a sender domain with a trailing dot', { senderDomain: 'auth.example.com.' }],
    ['a local part with an @', { fromLocalPart: 'no-reply@evil.example' }],
    ['a from name with an angle bracket', { fromName: 'keygate <admin@evil.example>' }],
    ['a from name with a line break', { fromName: 'keygate\r\nBcc: x@evil.example' }],
    ['an empty from name', { fromName: ' ' }],
    ['an http app URL', { appUrl: 'http://app.example.com' }],
    ['an app URL with a trailing slash', { appUrl: 'https://app.example.com/' }],
    ['an app URL with a query', { appUrl: 'https://app.example.com/?x=1' }],
    ['a reset TTL below the contract minimum', { passwordResetTtlSeconds: 299 }],
    ['a reset TTL above the contract maximum', { passwordResetTtlSeconds: 3601 }],
    ['an hourly cap of 0', { emailHourlyCap: 0 }],
    ['a fractional cooldown', { emailCooldownSeconds: 1.5 }],
    ['a custom MAIL FROM domain outside the sender domain', { customMailFromDomain: 'bounce.example.org' }],
    ['the sender domain itself as custom MAIL FROM domain', { customMailFromDomain: 'dev.auth.example.com' }],
  ])('refuses %s', (_what, change) => {
    expect(() => validateStageSettings(withMail(change as Partial<StageSettings['mail']>))).toThrow(/invalid settings/);
  });

  test('accepts an app URL with a path and a port, and a subdomain sender', () => {
    expect(() => validateStageSettings(withMail({ appUrl: 'https://example.com:8443/app', senderDomain: 'mail.dev.example.co.uk' }))).not.toThrow();
  });

  test.each([
    ['a bounce-rate alarm at the review threshold', { sesBounceRatePercent: 5 }],
    ['a complaint-rate alarm at the review threshold', { sesComplaintRatePercent: 0.1 }],
    ['a zero bounce-rate alarm', { sesBounceRatePercent: 0 }],
    ['an iterator-age alarm under a minute', { mailerIteratorAgeSeconds: 30 }],
  ])('refuses %s', (_what, change) => {
    expect(() => validateStageSettings(withAlarms(change))).toThrow(/invalid settings/);
  });
});

describe('throttle settings', () => {
  const dev = stageSettings('dev');
  const withApi = (change: Partial<StageSettings['api']>): StageSettings => ({ ...dev, api: { ...dev.api, ...change } });
  const withRoute = (exposure: (typeof ROUTE_EXPOSURES)[number], limits: ThrottleLimits): StageSettings =>
    withApi({ routeThrottles: { ...dev.api.routeThrottles, [exposure]: limits } });

  test('every stage throttles its expensive routes below its cheap ones, all within the stage default', () => {
    for (const s of allStageSettings()) {
      const t = s.api.routeThrottles;
      for (const cheap of [t.token, t.light]) {
        expect(t.expensive.rateLimit).toBeLessThan(cheap.rateLimit);
        expect(t.expensive.burstLimit).toBeLessThan(cheap.burstLimit);
      }
      for (const exposure of ROUTE_EXPOSURES) {
        expect(t[exposure].rateLimit).toBeLessThanOrEqual(s.api.throttleRateLimit);
        expect(t[exposure].burstLimit).toBeLessThanOrEqual(s.api.throttleBurstLimit);
      }
    }
  });

  test('accepts expensive routes throttled lower still', () => {
    expect(() => validateStageSettings(withRoute('expensive', { rateLimit: 1, burstLimit: 1 }))).not.toThrow();
  });

  test.each([
    ['a zero stage rate', withApi({ throttleRateLimit: 0 }), 'stage throttle rate must be positive'],
    ['a stage burst below the stage rate', withApi({ throttleRateLimit: 20, throttleBurstLimit: 19 }), 'stage throttle burst must be at least its rate'],
    ['a fractional stage burst', withApi({ throttleBurstLimit: 40.5 }), 'stage throttle burst must be a positive integer'],
    ['a zero route rate', withRoute('light', { rateLimit: 0, burstLimit: 10 }), 'light route throttle rate must be positive'],
    ['a negative route rate', withRoute('token', { rateLimit: -1, burstLimit: 10 }), 'token route throttle rate must be positive'],
    ['a route rate that is not a number', withRoute('token', { rateLimit: NaN, burstLimit: 10 }), 'token route throttle rate must be positive'],
    ['a zero route burst', withRoute('expensive', { rateLimit: 1, burstLimit: 0 }), 'expensive route throttle burst must be a positive integer'],
    ['a fractional route burst', withRoute('expensive', { rateLimit: 1, burstLimit: 2.5 }), 'expensive route throttle burst must be a positive integer'],
    ['a route burst below its rate', withRoute('light', { rateLimit: 10, burstLimit: 9 }), 'light route throttle burst must be at least its rate'],
    ['a route rate above the stage default', withRoute('light', { rateLimit: 21, burstLimit: 40 }), 'light route throttle must not exceed the stage default'],
    ['a route burst above the stage default', withRoute('light', { rateLimit: 10, burstLimit: 41 }), 'light route throttle must not exceed the stage default'],
    ['expensive routes allowed a higher rate than cheap ones', withRoute('expensive', { rateLimit: 11, burstLimit: 11 }), 'expensive route throttle must not exceed the token route throttle'],
    ['expensive routes allowed a higher burst than cheap ones', withRoute('expensive', { rateLimit: 5, burstLimit: 21 }), 'expensive route throttle must not exceed the token route throttle'],
  ])('refuses %s', (_what, settings, message) => {
    expect(() => validateStageSettings(settings)).toThrow(`invalid settings for stage dev: ${message}`);
  });
});

describe('pipeline settings', () => {
  test('absent without a source', () => {
    expect(pipelineSettings({})).toBeUndefined();
  });

  test('need both connection and repository, and the pipeline account', () => {
    expect(() => pipelineSettings({ source: { repository: 'a/b' } })).toThrow();
    const { source } = validationOverrides();
    expect(() => pipelineSettings({ source })).toThrow(/account/);
    expect(() => pipelineSettings({ source: { ...source, connectionArn: 'arn:aws:s3:::bucket' }, accounts: { pipeline: '111111111111' } })).toThrow(/connection ARN/);
  });

  test('stages without an account deploy to the pipeline account', () => {
    const overrides = { ...validationOverrides(), accounts: { pipeline: '111111111111', prod: '333333333333' } };
    const p = pipelineSettings(overrides)!;
    expect(p.source.branch).toBe('main');
    expect(p.manualApprovalBefore).toEqual(['prod']);
    expect(pipelineStageSettings(p, overrides).map((s) => s.target.account)).toEqual(['111111111111', '111111111111', '333333333333']);
  });
});
