import { Aws, Duration, Fn, RemovalPolicy } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ApiFunctionName, ApiSettings, StageSettings } from '../../config';
import { API_FUNCTIONS, FUNCTION_SPECS, apiRoutes } from '../catalog';
import { acknowledgeAuthMethod } from '../nag';
import { REST_ACCESS_LOG_FORMAT } from './access-log';
import { REQUEST_MODELS } from './models';

/** Request headers a browser may send cross-origin (both API kinds). */
export const CORS_HEADERS = ['Authorization', 'Content-Type', 'X-Correlation-Id'] as const;

/**
 * Execution logging of every method. A method's own setting does not inherit these from the
 * stage default, so each route's entry repeats them.
 */
const METHOD_LOGGING = {
  loggingLevel: apigateway.MethodLoggingLevel.ERROR,
  dataTraceEnabled: false,
  metricsEnabled: false,
} as const;

/** `/<path>/<METHOD>` of every API route -> the throttle of its exposure. */
export function routeMethodOptions(api: ApiSettings): Record<string, apigateway.MethodDeploymentOptions> {
  return Object.fromEntries(
    apiRoutes().map(({ route }) => {
      const limits = api.routeThrottles[route.exposure];
      const options: apigateway.MethodDeploymentOptions = {
        ...METHOD_LOGGING,
        throttlingRateLimit: limits.rateLimit,
        throttlingBurstLimit: limits.burstLimit,
      };
      return [`${route.path}/${route.method}`, options];
    }),
  );
}

export interface KeygateApiProps {
  readonly settings: StageSettings;
}

/**
 * The REST API: one resource/method per route of the contract, proxy integrations with the
 * functions' `live` aliases, a throttle per route by its exposure (expensive routes lowest) under
 * the stage default, JSON access logs with retention, X-Ray, request validation of JSON bodies and
 * problem+json gateway errors.
 *
 * REST APIs cannot cap request bodies below their fixed 10 MB; the WAF's core rule set blocks
 * bodies over 8 KB before they reach the gateway and each function enforces its own 16 KiB cap.
 */
export class KeygateApi extends Construct {
  readonly api: apigateway.RestApi;
  readonly accessLogs: logs.LogGroup;
  private readonly validator: apigateway.RequestValidator;
  private readonly settings: StageSettings;

  constructor(scope: Construct, id: string, props: KeygateApiProps) {
    super(scope, id);
    const { settings } = props;
    this.settings = settings;
    const api = settings.api;

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: settings.logRetentionDays as logs.RetentionDays,
      removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });

    const cors = api.cors.allowOrigins.length > 0
      ? {
          allowOrigins: [...api.cors.allowOrigins],
          allowMethods: ['GET', 'POST', 'OPTIONS'],
          allowHeaders: [...CORS_HEADERS],
          maxAge: Duration.seconds(api.cors.maxAgeSeconds),
        }
      : undefined;

    this.api = new apigateway.RestApi(this, 'Api', {
      restApiName: `keygate-${settings.stageName}`,
      description: `keygate ${settings.stageName}: authentication API`,
      endpointConfiguration: { types: [apigateway.EndpointType.REGIONAL] },
      // The account-level role API Gateway needs to write access and execution logs.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      defaultCorsPreflightOptions: cors,
      deployOptions: {
        stageName: api.stageName,
        throttlingRateLimit: api.throttleRateLimit,
        throttlingBurstLimit: api.throttleBurstLimit,
        ...METHOD_LOGGING,
        methodOptions: routeMethodOptions(api),
        tracingEnabled: true,
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.custom(JSON.stringify(REST_ACCESS_LOG_FORMAT)),
      },
    });

    // The stack publishes its own ApiUrl output (no trailing slash); drop RestApi's default one.
    this.api.node.tryRemoveChild('Endpoint');

    this.validator = new apigateway.RequestValidator(this, 'Validator', {
      restApi: this.api,
      requestValidatorName: 'json-body-and-parameters',
      validateRequestBody: true,
      validateRequestParameters: true,
    });

    this.addProblemResponses();
  }

  /**
   * The issuer URL the API will have, built from the API id without referencing the deployment
   * stage (api.url would make every function depend on the deployment, which depends on the
   * methods, which depend on the functions: a cycle).
   */
  get defaultIssuer(): string {
    return `https://${this.api.restApiId}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}/${this.settings.api.stageName}`;
  }

  /** Base URL of the stage without a trailing slash (what clients and the smoke test prefix paths with). */
  get baseUrl(): string {
    return Fn.join('', ['https://', this.api.restApiId, '.execute-api.', Aws.REGION, '.', Aws.URL_SUFFIX, '/', this.api.deploymentStage.stageName]);
  }

  /** The 5xx and latency metrics of the stage (AWS/ApiGateway, dimensions ApiName and Stage). */
  get metrics(): Pick<apigateway.Stage, 'metricServerError' | 'metricLatency'> {
    return this.api.deploymentStage;
  }

  /** Adds the routes of every API function, integrated with the given aliases. */
  addRoutes(aliases: Readonly<Record<ApiFunctionName, lambda.IFunction>>): void {
    for (const name of API_FUNCTIONS) {
      const integration = new apigateway.LambdaIntegration(aliases[name], { proxy: true, allowTestInvoke: false });
      FUNCTION_SPECS[name].routes.forEach((route, i) => {
        const resource = this.api.root.resourceForPath(route.path);
        const model = REQUEST_MODELS[route.endpoint];
        const method = resource.addMethod(route.method, integration, {
          // A function's first route is named after it, any further one after its endpoint too.
          operationName: i === 0 ? name : `${name}-${route.endpoint}`,
          requestValidator: this.validator,
          requestModels: model
            ? {
                'application/json': new apigateway.Model(this, `Model${modelId(route.path)}`, {
                  restApi: this.api,
                  contentType: 'application/json',
                  modelName: modelId(route.path),
                  schema: model,
                }),
              }
            : undefined,
        });
        acknowledgeAuthMethod(method);
      });
    }
  }

  /** Errors produced by the gateway itself are RFC 9457 problem documents, like the functions' own. */
  private addProblemResponses(): void {
    const problem = (title: string, status?: number): Record<string, string> => ({
      'application/json': `{"type":"about:blank","title":"${title}",${status ? `"status":${status},` : ''}"detail":$context.error.messageString}`,
    });
    const headers = { 'Content-Type': "'application/problem+json'" };
    const responses: [string, apigateway.ResponseType, string, number | undefined][] = [
      ['BadRequestBody', apigateway.ResponseType.BAD_REQUEST_BODY, 'Bad Request', 400],
      ['Throttled', apigateway.ResponseType.THROTTLED, 'Too Many Requests', 429],
      ['WafFiltered', apigateway.ResponseType.WAF_FILTERED, 'Forbidden', 403],
      ['Default4xx', apigateway.ResponseType.DEFAULT_4XX, 'Request rejected by the gateway', undefined],
      ['Default5xx', apigateway.ResponseType.DEFAULT_5XX, 'Gateway error', undefined],
    ];
    for (const [id, type, title, status] of responses) {
      this.api.addGatewayResponse(id, {
        type,
        statusCode: status ? String(status) : undefined,
        responseHeaders: headers,
        templates: problem(title, status),
      });
    }
  }
}

function modelId(path: string): string {
  return path
    .split(/[^A-Za-z0-9]+/)
    .filter((p) => p.length > 0)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
}
