import { ALARM_DEFAULTS, AUTH_DEFAULTS, DEFAULT_REGION, MAIL_RULE_DEFAULTS, MEMORY_MB, ON_DEMAND_TABLE } from './common';
import { StageSettings } from './types';

/**
 * prod: data retained and deletion-protected, longest log retention, provisioned concurrency on
 * login and refresh during business hours, highest throttling limits.
 */
export const prod: StageSettings = {
  stageName: 'prod',
  stackName: 'keygate-prod',
  target: { region: DEFAULT_REGION },
  retainData: true,
  logRetentionDays: 90,
  table: { ...ON_DEMAND_TABLE, deletionProtection: true },
  keys: { rotationDays: 30 },
  auth: AUTH_DEFAULTS,
  mail: {
    ...MAIL_RULE_DEFAULTS,
    senderDomain: 'auth.example.com',
    fromName: 'keygate',
    fromLocalPart: 'no-reply',
    appUrl: 'https://app.example.com',
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
    stageName: 'prod',
    throttleRateLimit: 500,
    throttleBurstLimit: 1000,
    routeThrottles: {
      expensive: { rateLimit: 100, burstLimit: 200 },
      token: { rateLimit: 250, burstLimit: 500 },
      light: { rateLimit: 250, burstLimit: 500 },
    },
    cors: { allowOrigins: [], maxAgeSeconds: 600 },
  },
  waf: { authRateLimits: { expensive: 300, token: 1000 }, authRateWindowSeconds: 300 },
  concurrency: {
    enabled: true,
    timeZone: 'America/New_York',
    businessHoursStart: 7,
    businessHoursEnd: 20,
    capacity: {
      login: { businessHours: 5, offHours: 1, max: 20 },
      refresh: { businessHours: 5, offHours: 1, max: 20 },
    },
  },
  observability: { alarms: ALARM_DEFAULTS },
  tags: { project: 'keygate', stage: 'prod' },
};
