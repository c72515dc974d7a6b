import { Aws, Duration, Fn, RemovalPolicy } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ApiFunctionName, ApiSettings, StageSettings } from '../../config';
import { API_FUNCTIONS, FUNCTION_SPECS, apiRoutes } from '../catalog';
import { acknowledgeAuthRoute } from '../nag';
import { HTTP_ACCESS_LOG_FORMAT } from './access-log';
import { CORS_HEADERS } from './api';

/** `METHOD /path` of every API route -> the throttle of its exposure (an HTTP API stage's RouteSettings). */
export function httpRouteSettings(api: ApiSettings): Record<string, { ThrottlingRateLimit: number; ThrottlingBurstLimit: number }> {
  return Object.fromEntries(
    apiRoutes().map(({ route }) => {
      const limits = api.routeThrottles[route.exposure];
      return [`${route.method} ${route.path}`, { ThrottlingRateLimit: limits.rateLimit, ThrottlingBurstLimit: limits.burstLimit }];
    }),
  );
}

export interface KeygateHttpApiProps {
  readonly settings: StageSettings;
}

/**
 * The HTTP API option (`api.kind: 'http'`): one route per route of the contract, Lambda proxy
 * integrations (payload format 2.0) with the functions' `live` aliases, the stage default throttle
 * and a throttle per route by its exposure, JSON access logs with retention, CORS from the same
 * settings, and the `$default` stage auto-deployed at the root of the API's URL. HTTP APIs take no
 * WAF web ACL, no request models and no X-Ray; docs/aws.md says what that gives up.
 */
export class KeygateHttpApi extends Construct {
  readonly api: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly accessLogs: logs.LogGroup;
  private readonly routes: apigwv2.HttpRoute[] = [];

  constructor(scope: Construct, id: string, props: KeygateHttpApiProps) {
    super(scope, id);
    const { settings } = props;
    const api = settings.api;

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: settings.logRetentionDays as logs.RetentionDays,
      removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });

    this.api = new apigwv2.HttpApi(this, 'Api', {
      apiName: `keygate-${settings.stageName}`,
      description: `keygate ${settings.stageName}: authentication API`,
      createDefaultStage: false,
      corsPreflight: api.cors.allowOrigins.length > 0
        ? {
            allowOrigins: [...api.cors.allowOrigins],
            allowMethods: [apigwv2.CorsHttpMethod.GET, apigwv2.CorsHttpMethod.POST, apigwv2.CorsHttpMethod.OPTIONS],
            allowHeaders: [...CORS_HEADERS],
            maxAge: Duration.seconds(api.cors.maxAgeSeconds),
          }
        : undefined,
    });

    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      autoDeploy: true,
      throttle: { rateLimit: api.throttleRateLimit, burstLimit: api.throttleBurstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
        format: apigateway.AccessLogFormat.custom(JSON.stringify(HTTP_ACCESS_LOG_FORMAT)),
      },
    });
    (this.stage.node.defaultChild as apigwv2.CfnStage).routeSettings = httpRouteSettings(api);
  }

  /**
   * The issuer URL the API will have, from the API id alone: the functions must not depend on the
   * stage, which depends on the routes (its RouteSettings name them), which depend on the functions.
   */
  get defaultIssuer(): string {
    return `https://${this.api.apiId}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}`;
  }

  /** Base URL of the `$default` stage without a trailing slash. */
  get baseUrl(): string {
    return Fn.join('', ['https://', this.api.apiId, '.execute-api.', Aws.REGION, '.', Aws.URL_SUFFIX]);
  }

  /** The 5xx and latency metrics of the API (AWS/ApiGateway, dimension ApiId). */
  get metrics(): Pick<apigwv2.HttpApi, 'metricServerError' | 'metricLatency'> {
    return this.api;
  }

  /** Adds the routes of every API function, integrated with the given aliases. */
  addRoutes(aliases: Readonly<Record<ApiFunctionName, lambda.IFunction>>): void {
    for (const name of API_FUNCTIONS) {
      // Invoke permission per route: source ARN <apiId>/*/*/<path> (HttpLambdaIntegration's default).
      const integration = new HttpLambdaIntegration(`${name}-integration`, aliases[name], {
        payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
      });
      for (const route of FUNCTION_SPECS[name].routes) {
        const httpRoute = new apigwv2.HttpRoute(this, `Route${route.method}${route.path}`, {
          httpApi: this.api,
          routeKey: apigwv2.HttpRouteKey.with(route.path, apigwv2.HttpMethod[route.method]),
          integration,
        });
        acknowledgeAuthRoute(httpRoute);
        // RouteSettings may name only routes that exist when the stage is created or updated.
        this.stage.node.addDependency(httpRoute);
        this.routes.push(httpRoute);
      }
    }
  }
}
