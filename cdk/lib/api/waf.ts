import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { StageSettings } from '../../config';

export interface ApiFirewallProps {
  readonly settings: StageSettings;
  readonly stage: apigateway.Stage;
}

/** Paths the credential rate-based rule watches (suffix match: the stage segment may precede them). */
export const RATE_LIMITED_PATHS = ['/auth/login', '/auth/register'] as const;

const MANAGED_RULE_GROUPS = [
  'AWSManagedRulesAmazonIpReputationList',
  'AWSManagedRulesCommonRuleSet',
  'AWSManagedRulesKnownBadInputsRuleSet',
] as const;

/**
 * A regional WAFv2 web ACL on the API stage: AWS managed rule groups (IP reputation, common rule
 * set, known bad inputs) and a per-IP rate-based rule scoped to login and register against
 * credential stuffing. WAF logs go to their own log group with the stage's retention, with the
 * Authorization header redacted.
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

    const pathStatements: wafv2.CfnWebACL.StatementProperty[] = RATE_LIMITED_PATHS.map((path) => ({
      byteMatchStatement: {
        fieldToMatch: { uriPath: {} },
        positionalConstraint: 'ENDS_WITH',
        searchString: path,
        textTransformations: [{ priority: 0, type: 'LOWERCASE' }],
      },
    }));

    const rateRule: wafv2.CfnWebACL.RuleProperty = {
      name: 'CredentialEndpointsRateLimit',
      priority: MANAGED_RULE_GROUPS.length,
      action: { block: {} },
      statement: {
        rateBasedStatement: {
          aggregateKeyType: 'IP',
          limit: settings.waf.authRateLimit,
          evaluationWindowSec: settings.waf.authRateWindowSeconds,
          scopeDownStatement: { orStatement: { statements: pathStatements } },
        },
      },
      visibilityConfig: metric('credential-rate-limit'),
    };

    this.webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      name: `keygate-${settings.stageName}-api`,
      description: `keygate ${settings.stageName}: protects the REST API stage`,
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      rules: [...managedRules, rateRule],
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
