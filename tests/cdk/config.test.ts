import { STAGE_NAMES, allStageSettings, metricsNamespace, pipelineSettings, pipelineStageSettings, stageSettings, validateStageSettings } from '../../cdk/config';
import { validationOverrides } from './helpers';

describe('stage settings', () => {
  test('three stages in promotion order, each valid', () => {
    expect(allStageSettings().map((s) => s.stageName)).toEqual(['dev', 'staging', 'prod']);
    for (const name of STAGE_NAMES) {
      expect(() => validateStageSettings(stageSettings(name))).not.toThrow();
    }
  });

  test('every function is x86_64 by default in every stage', () => {
    for (const s of allStageSettings()) {
      expect(s.functions.architecture).toBe('X86_64');
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
    ['a WAF limit below 10', { waf: { authRateLimit: 5, authRateWindowSeconds: 300 as const } }],
    ['a malformed account', { target: { account: '12', region: 'us-east-1' } }],
    ['an API function timeout above 29 s', { functions: { ...stageSettings('dev').functions, timeoutSeconds: 30 } }],
  ])('refuses %s', (_what, change) => {
    expect(() => validateStageSettings({ ...stageSettings('dev'), ...change })).toThrow(/invalid settings/);
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
