import { ALARM_DEFAULTS, AUTH_DEFAULTS, DEFAULT_REGION, MAIL_RULE_DEFAULTS, MEMORY_MB, ON_DEMAND_TABLE } from './common';
import { StageSettings } from './types';

/**
 * staging: the prod shape at small scale. Same features as prod (provisioned concurrency schedule,
 * retained data) so a change that breaks them fails here first.
 */
export const staging: StageSettings = {
  stageName: 'staging',
  stackName: 'keygate-staging',
  target: { region: DEFAULT_REGION },
  retainData: true,
  logRetentionDays: 60,
  table: { ...ON_DEMAND_TABLE, deletionProtection: true },
  keys: { rotationDays: 30 },
  auth: AUTH_DEFAULTS,
  mail: {
    ...MAIL_RULE_DEFAULTS,
    senderDomain: 'staging.auth.example.com',
    fromName: 'keygate',
    fromLocalPart: 'no-reply',
    appUrl: 'https://staging.app.example.com',
  },
  functions: {
    architecture: 'X86_64',
    memoryMb: MEMORY_MB,
    timeoutSeconds: 10,
    rotationTimeoutSeconds: 60,
    mailerTimeoutSeconds: 30,
    logLevel: 'info',
  },
  api: {
    kind: 'rest',
    stageName: 'staging',
    throttleRateLimit: 50,
    throttleBurstLimit: 100,
    routeThrottles: {
      expensive: { rateLimit: 10, burstLimit: 20 },
      token: { rateLimit: 25, burstLimit: 50 },
      light: { rateLimit: 25, burstLimit: 50 },
    },
    cors: { allowOrigins: [], maxAgeSeconds: 600 },
  },
  waf: { authRateLimits: { expensive: 100, token: 300 }, authRateWindowSeconds: 300 },
  concurrency: {
    enabled: true,
    timeZone: 'America/New_York',
    businessHoursStart: 8,
    businessHoursEnd: 18,
    capacity: {
      login: { businessHours: 1, offHours: 1, max: 2 },
      refresh: { businessHours: 1, offHours: 1, max: 2 },
    },
  },
  observability: { alarms: { ...ALARM_DEFAULTS, loginFailedPer5Minutes: 50 } },
  tags: { project: 'keygate', stage: 'staging' },
};
