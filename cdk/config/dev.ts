import { ALARM_DEFAULTS, AUTH_DEFAULTS, DEFAULT_REGION, MAIL_RULE_DEFAULTS, MEMORY_MB, ON_DEMAND_TABLE } from './common';
import { StageSettings } from './types';

/** dev: cheapest shape. Everything on demand, no provisioned concurrency, data destroyed with the stack. */
export const dev: StageSettings = {
  stageName: 'dev',
  stackName: 'keygate-dev',
  target: { region: DEFAULT_REGION },
  retainData: false,
  logRetentionDays: 30,
  table: { ...ON_DEMAND_TABLE, deletionProtection: false },
  keys: { rotationDays: 30 },
  auth: AUTH_DEFAULTS,
  mail: {
    ...MAIL_RULE_DEFAULTS,
    senderDomain: 'dev.auth.example.com',
    fromName: 'keygate',
    fromLocalPart: 'no-reply',
    appUrl: 'https://dev.app.example.com',
  },
  functions: {
    architecture: 'X86_64',
    memoryMb: MEMORY_MB,
    timeoutSeconds: 10,
    rotationTimeoutSeconds: 60,
    mailerTimeoutSeconds: 30,
    logLevel: 'info,keygate=debug',
  },
  api: {
    kind: 'rest',
    stageName: 'dev',
    throttleRateLimit: 20,
    throttleBurstLimit: 40,
    routeThrottles: {
      expensive: { rateLimit: 5, burstLimit: 10 },
      token: { rateLimit: 10, burstLimit: 20 },
      light: { rateLimit: 10, burstLimit: 20 },
    },
    cors: { allowOrigins: ['http://localhost:3000', 'http://127.0.0.1:3000'], maxAgeSeconds: 600 },
  },
  waf: { authRateLimits: { expensive: 100, token: 300 }, authRateWindowSeconds: 300 },
  concurrency: { enabled: false },
  observability: { alarms: { ...ALARM_DEFAULTS, api5xxRatePercent: 5, apiP95LatencyMs: 2000, loginFailedPer5Minutes: 50 } },
  tags: { project: 'keygate', stage: 'dev' },
};
