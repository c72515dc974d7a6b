/**
 * The JSON access-log fields of both API kinds: API Gateway context variables that REST and HTTP
 * APIs share, then what each kind adds. Never a header value (no Authorization, no cookies).
 */
const SHARED_FIELDS = {
  requestId: '$context.requestId',
  extendedRequestId: '$context.extendedRequestId',
  ip: '$context.identity.sourceIp',
  requestTime: '$context.requestTimeEpoch',
  httpMethod: '$context.httpMethod',
  status: '$context.status',
  protocol: '$context.protocol',
  responseLength: '$context.responseLength',
  responseLatency: '$context.responseLatency',
  integrationLatency: '$context.integration.latency',
  integrationStatus: '$context.integration.status',
  errorMessage: '$context.error.message',
  userAgent: '$context.identity.userAgent',
} as const;

/** The REST API's (cdk/lib/api/api.ts): its resource path, WAF verdict and X-Ray trace. */
export const REST_ACCESS_LOG_FORMAT = {
  ...SHARED_FIELDS,
  resourcePath: '$context.resourcePath',
  wafStatus: '$context.waf.status',
  xrayTraceId: '$context.xrayTraceId',
} as const;

/**
 * The HTTP API's (cdk/lib/api/http-api.ts): routeKey ("POST /auth/login") stands in for the resource
 * path, and the integration's own error; HTTP APIs have no WAF and no X-Ray.
 */
export const HTTP_ACCESS_LOG_FORMAT = {
  ...SHARED_FIELDS,
  routeKey: '$context.routeKey',
  integrationError: '$context.integration.error',
} as const;
