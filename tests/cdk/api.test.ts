import { Match, Template } from 'aws-cdk-lib/assertions';
import { logicalId, resourcesOfType, stageTemplate } from './helpers';

/** path -> method -> alias function name of the integration. */
function routes(template: Template): Record<string, string> {
  const resources = resourcesOfType(template, 'AWS::ApiGateway::Resource');
  const apiId = logicalId(template, 'AWS::ApiGateway::RestApi', '');
  const pathOf = (ref: any): string => {
    if (ref['Fn::GetAtt']?.[0] === apiId) return '';
    const r = resources[ref.Ref].Properties!;
    return `${pathOf(r.ParentId)}/${r.PathPart}`;
  };
  const out: Record<string, string> = {};
  for (const m of Object.values(resourcesOfType(template, 'AWS::ApiGateway::Method'))) {
    const p = m.Properties!;
    if (p.HttpMethod === 'OPTIONS') continue;
    const path = pathOf(p.ResourceId);
    const uri = JSON.stringify(p.Integration.Uri);
    const alias = /"Ref":"(Concurrency[A-Za-z]+live[A-Za-z0-9]*)"/.exec(uri)?.[1] ?? 'none';
    out[`${p.HttpMethod} ${path}`] = alias;
  }
  return out;
}

describe('REST API', () => {
  const { template } = stageTemplate('dev');

  test('one route per function as in the contract, proxied to the live aliases', () => {
    const r = routes(template);
    expect(Object.keys(r).sort()).toEqual([
      'GET /.well-known/jwks.json',
      'GET /.well-known/openid-configuration',
      'GET /auth/me',
      'POST /auth/login',
      'POST /auth/logout',
      'POST /auth/logout-all',
      'POST /auth/password',
      'POST /auth/refresh',
      'POST /auth/register',
    ]);
    expect(r['POST /auth/register']).toMatch(/^Concurrencyregisterlive/);
    expect(r['POST /auth/login']).toMatch(/^Concurrencyloginlive/);
    expect(r['POST /auth/refresh']).toMatch(/^Concurrencyrefreshlive/);
    expect(r['POST /auth/logout']).toMatch(/^Concurrencylogoutlive/);
    expect(r['POST /auth/logout-all']).toMatch(/^Concurrencylogoutalllive/);
    expect(r['POST /auth/password']).toMatch(/^Concurrencychangepasswordlive/);
    expect(r['GET /auth/me']).toMatch(/^Concurrencymelive/);
    expect(r['GET /.well-known/jwks.json']).toMatch(/^Concurrencywellknownlive/);
    expect(r['GET /.well-known/openid-configuration']).toMatch(/^Concurrencywellknownlive/);
    template.allResourcesProperties('AWS::ApiGateway::Method', {
      Integration: Match.objectLike({ Type: Match.stringLikeRegexp('AWS_PROXY|MOCK') }),
    });
  });

  test('regional endpoint', () => {
    template.hasResourceProperties('AWS::ApiGateway::RestApi', { EndpointConfiguration: { Types: ['REGIONAL'] } });
  });

  test('stage throttling, tracing, JSON access logs to a log group with retention', () => {
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'dev',
      TracingEnabled: true,
      MethodSettings: Match.arrayWith([
        Match.objectLike({ HttpMethod: '*', ResourcePath: '/*', ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40, LoggingLevel: 'ERROR', DataTraceEnabled: false }),
      ]),
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"') },
    });
    const stage = Object.values(resourcesOfType(template, 'AWS::ApiGateway::Stage'))[0].Properties!;
    const groupId = /"Ref":"(ApiAccessLogs[A-Z0-9]+)"/.exec(JSON.stringify(stage.AccessLogSetting.DestinationArn))![1];
    expect(resourcesOfType(template, 'AWS::Logs::LogGroup')[groupId].Properties!.RetentionInDays).toBe(30);
    // Access logs hold no authorization data.
    expect(stage.AccessLogSetting.Format).not.toMatch(/authorization|Authorization/);
  });

  test('prod throttles at its own rate and burst', () => {
    stageTemplate('prod').template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'prod',
      MethodSettings: Match.arrayWith([Match.objectLike({ ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 })]),
    });
  });

  test('request validation of JSON bodies with models on the POST routes that take one', () => {
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
    template.resourceCountIs('AWS::ApiGateway::Model', 5);
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      ContentType: 'application/json',
      Schema: Match.objectLike({ type: 'object', required: ['email', 'password'] }),
    });
    const methods = Object.values(resourcesOfType(template, 'AWS::ApiGateway::Method')).filter((m) => m.Properties!.HttpMethod !== 'OPTIONS');
    for (const m of methods) {
      expect(m.Properties!.RequestValidatorId).toBeDefined();
    }
    expect(methods.filter((m) => m.Properties!.RequestModels).length).toBe(5);
  });

  test('gateway errors are problem+json', () => {
    for (const type of ['BAD_REQUEST_BODY', 'THROTTLED', 'WAF_FILTERED', 'DEFAULT_4XX', 'DEFAULT_5XX']) {
      template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
        ResponseType: type,
        ResponseParameters: { 'gatewayresponse.header.Content-Type': "'application/problem+json'" },
        ResponseTemplates: { 'application/json': Match.stringLikeRegexp('"type":"about:blank"') },
      });
    }
  });

  test('CORS from config: dev answers preflights for its origins, prod has none', () => {
    const options = Object.values(resourcesOfType(template, 'AWS::ApiGateway::Method')).filter((m) => m.Properties!.HttpMethod === 'OPTIONS');
    expect(options.length).toBeGreaterThan(0);
    expect(JSON.stringify(options[0].Properties!.Integration)).toContain('http://localhost:3000');
    const prodOptions = Object.values(resourcesOfType(stageTemplate('prod').template, 'AWS::ApiGateway::Method')).filter((m) => m.Properties!.HttpMethod === 'OPTIONS');
    expect(prodOptions).toHaveLength(0);
  });

  test('aliases may be invoked by this API only, per method', () => {
    const perms = Object.values(resourcesOfType(template, 'AWS::Lambda::Permission')).filter((p) => p.Properties!.Principal === 'apigateway.amazonaws.com');
    expect(perms).toHaveLength(9);
    for (const p of perms) {
      expect(JSON.stringify(p.Properties!.SourceArn)).not.toContain('test-invoke-stage');
    }
  });
});

describe('WAF', () => {
  const { template } = stageTemplate('dev');

  test('regional web ACL with the three managed rule groups and the credential rate rule', () => {
    template.hasResourceProperties('AWS::WAFv2::WebACL', {
      Scope: 'REGIONAL',
      DefaultAction: { Allow: {} },
      Rules: Match.arrayWith([
        Match.objectLike({ Statement: { ManagedRuleGroupStatement: Match.objectLike({ VendorName: 'AWS', Name: 'AWSManagedRulesAmazonIpReputationList' }) } }),
        Match.objectLike({ Statement: { ManagedRuleGroupStatement: Match.objectLike({ VendorName: 'AWS', Name: 'AWSManagedRulesCommonRuleSet' }) } }),
        Match.objectLike({ Statement: { ManagedRuleGroupStatement: Match.objectLike({ VendorName: 'AWS', Name: 'AWSManagedRulesKnownBadInputsRuleSet' }) } }),
      ]),
    });
  });

  test('rate-based rule: per IP, scoped down to login and register, limit from config', () => {
    const acl = Object.values(resourcesOfType(template, 'AWS::WAFv2::WebACL'))[0].Properties!;
    const rule = (acl.Rules as any[]).find((r) => r.Statement.RateBasedStatement);
    expect(rule.Action).toEqual({ Block: {} });
    const rate = rule.Statement.RateBasedStatement;
    expect(rate.Limit).toBe(100);
    expect(rate.AggregateKeyType).toBe('IP');
    const paths = rate.ScopeDownStatement.OrStatement.Statements.map((s: any) => s.ByteMatchStatement.SearchString).sort();
    expect(paths).toEqual(['/auth/login', '/auth/register']);
    const prodAcl = Object.values(resourcesOfType(stageTemplate('prod').template, 'AWS::WAFv2::WebACL'))[0].Properties!;
    expect((prodAcl.Rules as any[]).find((r) => r.Statement.RateBasedStatement).Statement.RateBasedStatement.Limit).toBe(300);
  });

  test('associated with the API stage', () => {
    const aclId = logicalId(template, 'AWS::WAFv2::WebACL', '');
    const stageId = logicalId(template, 'AWS::ApiGateway::Stage', '');
    const apiId = logicalId(template, 'AWS::ApiGateway::RestApi', '');
    template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', {
      WebACLArn: { 'Fn::GetAtt': [aclId, 'Arn'] },
      ResourceArn: { 'Fn::Join': ['', Match.arrayWith([{ Ref: apiId }, '/stages/', { Ref: stageId }])] },
    });
  });

  test('WAF logs with the Authorization header redacted', () => {
    template.hasResourceProperties('AWS::WAFv2::LoggingConfiguration', {
      RedactedFields: [{ SingleHeader: { Name: 'authorization' } }],
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: 'aws-waf-logs-keygate-dev', RetentionInDays: 30 });
  });
});
