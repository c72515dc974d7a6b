import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { StageSettings, WAF_RATE_LIMITED_EXPOSURES, WafRateLimitedExposure } from '../../config';
import { apiRoutes } from '../catalog';

export interface ApiFirewallProps {
  readonly settings: StageSettings;
  readonly stage: apigateway.Stage;
}

/** Paths of the catalog's routes with this exposure: what its rate-based rule watches. */
export function rateLimitedPaths(exposure: WafRateLimitedExposure): string[] {
  return [...new Set(apiRoutes().filter(({ route }) => route.exposure === exposure).map(({ route }) => route.path))];
}

/**
 * The catalog paths of another exposure that contain `path` (`/auth/mfa/totp/activate`, expensive,
 * contains `/auth/mfa/totp`, token): a rule matching `path` anywhere must leave them out, or their
 * calls would also spend that exposure's budget. Nothing is left uncounted by it: a request to
 * such a path is the other route's, counted by that route's own rule if it has one.
 */
export function longerPathsOfOtherExposures(path: string, exposure: WafRateLimitedExposure): string[] {
  const p = path.toLowerCase();
  return [
    ...new Set(
      apiRoutes()
        .filter(({ route }) => route.exposure !== exposure && route.path.toLowerCase() !== p && route.path.toLowerCase().includes(p))
        .map(({ route }) => route.path),
    ),
  ];
}

/**
 * The paths `exposure`'s rule needs a statement for: its paths less those another of them already
 * matches (`/auth/password` matches `/auth/password/reset` anywhere in the URI, and with it every
 * request to that route), so the rule costs no capacity on a match that adds nothing. Each byte
 * match with its three text transformations costs 40 WCUs; see docs/aws.md for the web ACL's total.
 */
export function rateRulePaths(exposure: WafRateLimitedExposure): string[] {
  const paths = rateLimitedPaths(exposure);
  const lower = (p: string): string => p.toLowerCase();
  const coveredBy = (q: string, p: string): boolean =>
    p !== q && lower(q).includes(lower(p)) && !longerPathsOfOtherExposures(p, exposure).some((x) => lower(q).includes(lower(x)));
  return paths.filter((q) => !paths.some((p) => coveredBy(q, p)));
}

/** Name of each exposure's rate-based rule. */
const RATE_RULE_NAMES: Readonly<Record<WafRateLimitedExposure, string>> = {
  expensive: 'ExpensiveEndpointsRateLimit',
  token: 'TokenEndpointsRateLimit',
};

const MANAGED_RULE_GROUPS = [
  'AWSManagedRulesAmazonIpReputationList',
  'AWSManagedRulesCommonRuleSet',
  'AWSManagedRulesKnownBadInputsRuleSet',
] as const;

/**
 * A regional WAFv2 web ACL on the API stage: AWS managed rule groups (IP reputation, common rule
 * set, known bad inputs) and per-IP rate-based rules, one per rate-limited route exposure (see
 * RouteExposure): the expensive routes (credential stuffing, hashing cost, second-factor codes
 * traded for a session) and the token routes (refresh-token guessing, the other /auth/mfa routes),
 * each with its own limit so busy refreshes behind one NAT do not spend the logins' budget. WAF
 * logs go to their own log group with the stage's retention, with the Authorization header redacted.
 */
export class ApiFirewall extends Construct {
  readonly webAcl: wafv2.CfnWebACL;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ApiFirewallProps) {
    super(scope, id);
    const { settings } = props;
    const metric = (name: string): wafv2.CfnWebACL.VisibilityConfigProperty => ({
      cloudWatchMetricsEnabled: true,
      sampledRequestsEnabled: true,
      metricName: `keygate-${settings.stageName}-${name}`,
    });

    const managedRules: wafv2.CfnWebACL.RuleProperty[] = MANAGED_RULE_GROUPS.map((name, i) => ({
      name,
      priority: i,
      overrideAction: { none: {} },
      statement: {
        managedRuleGroupStatement: {
          vendorName: 'AWS',
          name,
          // API clients (mobile apps, back ends) often send no User-Agent: count, do not block.
          ruleActionOverrides: name === 'AWSManagedRulesCommonRuleSet' ? [{ name: 'NoUserAgent_HEADER', actionToUse: { count: {} } }] : undefined,
        },
      },
      visibilityConfig: metric(name),
    }));

    // CONTAINS on the decoded, normalised, lowercased path: the stage segment precedes the route
    // path, and a trailing slash, an encoded letter or a doubled slash must not step around the
    // rule. Matching more than the route only counts more, never less.
    const pathMatch = (path: string): wafv2.CfnWebACL.StatementProperty => ({
      byteMatchStatement: {
        fieldToMatch: { uriPath: {} },
        positionalConstraint: 'CONTAINS',
        searchString: path.toLowerCase(),
        textTransformations: [
          { priority: 0, type: 'URL_DECODE' },
          { priority: 1, type: 'NORMALIZE_PATH' },
          { priority: 2, type: 'LOWERCASE' },
        ],
      },
    });

    // A path, less the longer catalog paths of other exposures that contain it (WAF wants two or
    // more statements in an AND, one in a NOT).
    const routeMatch = (path: string, exposure: WafRateLimitedExposure): wafv2.CfnWebACL.StatementProperty => {
      const others = longerPathsOfOtherExposures(path, exposure);
      if (others.length === 0) {
        return pathMatch(path);
      }
      return { andStatement: { statements: [pathMatch(path), ...others.map((o) => ({ notStatement: { statement: pathMatch(o) } }))] } };
    };

    const rateRules: wafv2.CfnWebACL.RuleProperty[] = WAF_RATE_LIMITED_EXPOSURES.map((exposure, i) => {
      const paths = rateRulePaths(exposure);
      if (paths.length === 0) {
        throw new Error(`no route in the catalog has exposure ${exposure}: its WAF rate rule would watch nothing`);
      }
      // WAF wants two or more statements in an OR.
      const statements = paths.map((p) => routeMatch(p, exposure));
      const scopeDownStatement = statements.length === 1 ? statements[0] : { orStatement: { statements } };
      return {
        name: RATE_RULE_NAMES[exposure],
        priority: MANAGED_RULE_GROUPS.length + i,
        action: { block: {} },
        statement: {
          rateBasedStatement: {
            aggregateKeyType: 'IP',
            limit: settings.waf.authRateLimits[exposure],
            evaluationWindowSec: settings.waf.authRateWindowSeconds,
            scopeDownStatement,
          },
        },
        visibilityConfig: metric(`${exposure}-rate-limit`),
      };
    });

    this.webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      name: `keygate-${settings.stageName}-api`,
      description: `keygate ${settings.stageName}: protects the REST API stage`,
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      rules: [...managedRules, ...rateRules],
      visibilityConfig: metric('web-acl'),
    });

    new wafv2.CfnWebACLAssociation(this, 'Association', {
      resourceArn: props.stage.stageArn,
      webAclArn: this.webAcl.attrArn,
    });

    // WAF requires the log group name to start with aws-waf-logs-.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `aws-waf-logs-${Stack.of(this).stackName}`,
      retention: settings.logRetentionDays as logs.RetentionDays,
      removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    new wafv2.CfnLoggingConfiguration(this, 'Logging', {
      resourceArn: this.webAcl.attrArn,
      logDestinationConfigs: [
        Stack.of(this).formatArn({
          service: 'logs',
          resource: 'log-group',
          resourceName: this.logGroup.logGroupName,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      ],
      redactedFields: [{ singleHeader: { Name: 'authorization' } }],
    });
  }
}
