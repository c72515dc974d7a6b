import { Match, Template } from 'aws-cdk-lib/assertions';
import { RouteExposure, StageName, stageSettings } from '../../cdk/config';
import { apiRoutes } from '../../cdk/lib/catalog';
import { customTemplate, logicalId, resourcesOfType, stageTemplate } from './helpers';
import openapiJson from '../../handlers/http/openapi.json';
import { REQUEST_MODELS } from '../../cdk/lib/api/models';

/** "METHOD /path" of every contract endpoint -> its exposure and function (cdk/contract.json). */
const EXPOSURE: Readonly<Record<string, RouteExposure>> = Object.fromEntries(apiRoutes().map(({ route }) => [`${route.method} ${route.path}`, route.exposure]));
const FUNCTION_OF: Readonly<Record<string, string>> = Object.fromEntries(apiRoutes().map(({ name, route }) => [`${route.method} ${route.path}`, name]));

/** The live-alias logical id prefix of a function (`logout-all` -> `Concurrencylogoutalllive`). */
const liveAlias = (name: string): RegExp => new RegExp(`^Concurrency${name.replace(/-/g, '')}live`);

/** "METHOD /path" -> the method setting the stage holds for it (ResourcePath "/~1auth~1login"). */
function methodSettings(template: Template): Record<string, any> {
  const stage = Object.values(resourcesOfType(template, 'AWS::ApiGateway::Stage'))[0].Properties!;
  const out: Record<string, any> = {};
  for (const m of stage.MethodSettings as any[]) {
    const path = m.ResourcePath === '/*' ? '/*' : m.ResourcePath.slice(1).replace(/~1/g, '/');
    out[`${m.HttpMethod} ${path}`] = m;
  }
  return out;
}

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

  test('one route per endpoint of the contract, proxied to the live alias of its function', () => {
    const r = routes(template);
    expect(Object.keys(r).sort()).toEqual(Object.keys(FUNCTION_OF).sort());
    for (const [route, name] of Object.entries(FUNCTION_OF)) {
      expect([route, r[route]]).toEqual([route, expect.stringMatching(liveAlias(name))]);
    }
    // Written out, so an empty or garbled contract cannot pass the loop above unnoticed.
    expect(Object.keys(r).length).toBeGreaterThanOrEqual(12);
    expect(r['POST /auth/login']).toMatch(/^Concurrencyloginlive/);
    expect(r['GET /.well-known/jwks.json']).toMatch(/^Concurrencywellknownlive/);
    expect(EXPOSURE['POST /auth/login']).toBe('expensive');
    expect(EXPOSURE['POST /auth/refresh']).toBe('token');
    expect(EXPOSURE['GET /auth/me']).toBe('light');
    // The OAuth endpoints are served by the functions of their JSON twins (no binaries of their own).
    expect(r['POST /oauth/token']).toMatch(/^Concurrencyrefreshlive/);
    expect(r['POST /oauth/revoke']).toMatch(/^Concurrencylogoutlive/);
    expect(r['GET /.well-known/oauth-authorization-server']).toMatch(/^Concurrencywellknownlive/);
    expect(EXPOSURE['POST /oauth/token']).toBe('token');
    // account-email: the two routes that mail an address the caller names are expensive like the
    // reset, which hashes; checking a code is not.
    for (const path of ['/auth/email/verification', '/auth/email/verify', '/auth/password/forgot', '/auth/password/reset']) {
      expect(r[`POST ${path}`]).toMatch(/^Concurrencyaccountemaillive/);
    }
    expect(EXPOSURE['POST /auth/email/verification']).toBe('expensive');
    expect(EXPOSURE['POST /auth/password/forgot']).toBe('expensive');
    expect(EXPOSURE['POST /auth/password/reset']).toBe('expensive');
    expect(EXPOSURE['POST /auth/email/verify']).toBe('light');
    // account-mfa (factor_keys): the login's second step and the activation trade a code for a
    // session, like the login; the other bearer routes check or change a factor: rate-limited too.
    for (const path of ['/auth/mfa/totp', '/auth/mfa/totp/activate', '/auth/mfa/recovery-codes', '/auth/mfa/totp/disable', '/auth/mfa/verify']) {
      expect(r[`POST ${path}`]).toMatch(/^Concurrencyaccountmfalive/);
    }
    expect(EXPOSURE['POST /auth/mfa/verify']).toBe(EXPOSURE['POST /auth/login']);
    expect(EXPOSURE['POST /auth/mfa/verify']).toBe('expensive');
    expect(EXPOSURE['POST /auth/mfa/totp/activate']).toBe('expensive');
    expect(EXPOSURE['POST /auth/mfa/totp']).toBe('token');
    expect(EXPOSURE['POST /auth/mfa/recovery-codes']).toBe('token');
    expect(EXPOSURE['POST /auth/mfa/totp/disable']).toBe('token');
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

  test.each<StageName>(['dev', 'prod'])('%s: every route has its own throttle, the one of its exposure', (stage) => {
    const t = stage === 'dev' ? template : stageTemplate('prod').template;
    const api = stageSettings(stage).api;
    const settings = methodSettings(t);
    const methods = Object.keys(routes(t)).sort();
    expect(methods).toEqual(Object.keys(EXPOSURE).sort());
    for (const method of methods) {
      const limits = api.routeThrottles[EXPOSURE[method]];
      expect([method, settings[method]]).toEqual([
        method,
        expect.objectContaining({ ThrottlingRateLimit: limits.rateLimit, ThrottlingBurstLimit: limits.burstLimit, LoggingLevel: 'ERROR', DataTraceEnabled: false, MetricsEnabled: false }),
      ]);
    }
    // The stage default and one entry per route, nothing else.
    expect(Object.keys(settings).sort()).toEqual(['* /*', ...methods].sort());
  });

  test('the expensive routes are throttled below the others', () => {
    const settings = methodSettings(template);
    const rates = (exposure: RouteExposure): number[] =>
      Object.keys(EXPOSURE).filter((m) => EXPOSURE[m] === exposure).map((m) => settings[m].ThrottlingRateLimit);
    expect(Math.max(...rates('expensive'))).toBeLessThan(Math.min(...rates('token'), ...rates('light')));
  });

  test('route throttles follow the settings', () => {
    const custom = customTemplate('dev', (s) => ({
      ...s,
      api: { ...s.api, routeThrottles: { expensive: { rateLimit: 2, burstLimit: 3 }, token: { rateLimit: 7, burstLimit: 11 }, light: { rateLimit: 13, burstLimit: 17 } } },
    }));
    const settings = methodSettings(custom);
    expect(settings['POST /auth/password']).toMatchObject({ ThrottlingRateLimit: 2, ThrottlingBurstLimit: 3 });
    expect(settings['POST /auth/refresh']).toMatchObject({ ThrottlingRateLimit: 7, ThrottlingBurstLimit: 11 });
    expect(settings['GET /auth/me']).toMatchObject({ ThrottlingRateLimit: 13, ThrottlingBurstLimit: 17 });
  });

  test('request validation of JSON bodies with models on the POST routes that take one', () => {
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
    // register, login, refresh, logout, password, account-email's four and account-mfa's five.
    template.resourceCountIs('AWS::ApiGateway::Model', 14);
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      ContentType: 'application/json',
      Schema: Match.objectLike({ type: 'object', required: ['email', 'password'] }),
    });
    const methods = Object.values(resourcesOfType(template, 'AWS::ApiGateway::Method')).filter((m) => m.Properties!.HttpMethod !== 'OPTIONS');
    for (const m of methods) {
      expect(m.Properties!.RequestValidatorId).toBeDefined();
    }
    expect(methods.filter((m) => m.Properties!.RequestModels).length).toBe(14);
  });

  test('account-email bodies: an email; a token or an email and code (none required); a new password', () => {
    const model = (name: string) => Object.values(resourcesOfType(template, 'AWS::ApiGateway::Model')).find((m) => m.Properties!.Name === name)!.Properties!.Schema;
    const str = { type: 'string' };
    expect(model('AuthEmailVerification')).toMatchObject({ type: 'object', required: ['email'], properties: { email: str } });
    expect(model('AuthPasswordForgot')).toMatchObject({ type: 'object', required: ['email'], properties: { email: str } });
    expect(model('AuthEmailVerify')).toMatchObject({ type: 'object', required: [], properties: { token: str, email: str, code: str } });
    expect(model('AuthPasswordReset')).toMatchObject({ type: 'object', required: ['new_password'], properties: { token: str, email: str, code: str, new_password: str } });
  });

  test('the request models are the JSON request bodies of the OpenAPI document', () => {
    const doc = openapiJson as any;
    const bodies = Object.values(doc.paths as Record<string, Record<string, any>>)
      .flatMap((ops) => Object.values(ops))
      .filter((op) => op.requestBody?.content?.['application/json']);
    expect(Object.keys(REQUEST_MODELS).sort()).toEqual(bodies.map((op) => op.operationId).sort());
    for (const op of bodies) {
      const ref: string = op.requestBody.content['application/json'].schema.$ref;
      const schema = doc.components.schemas[ref.split('/').pop()!];
      const model = REQUEST_MODELS[op.operationId];
      // A body whose members are all optional (email_verify) has no `required` in the document.
      expect(model.required).toEqual(schema.required ?? []);
      expect(Object.keys(model.properties!)).toEqual(Object.keys(schema.properties));
    }
    // Rendered into the template for a route, e.g. login's optional device token.
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      Name: 'AuthLogin',
      Schema: Match.objectLike({ required: ['email', 'password'], properties: Match.objectLike({ device_token: { type: 'string' } }) }),
    });
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
    // One per route of the contract (22: keygate's JSON routes, account-email's four, account-mfa's
    // five, the OAuth token and revocation endpoints, the three well-known documents, the OpenAPI document).
    expect(perms).toHaveLength(apiRoutes().length);
    expect(perms).toHaveLength(22);
    for (const p of perms) {
      expect(JSON.stringify(p.Properties!.SourceArn)).not.toContain('test-invoke-stage');
    }
  });
});

function rateRules(template: Template): any[] {
  const acl = Object.values(resourcesOfType(template, 'AWS::WAFv2::WebACL'))[0].Properties!;
  return (acl.Rules as any[]).filter((r) => r.Statement.RateBasedStatement);
}

/**
 * Whether a WAF scope-down statement matches a URI path: the byte-match and OR statements and the
 * text transformations the rules use. Anything else throws, so a new kind of statement cannot
 * pass unexamined.
 */
function matches(statement: any, uriPath: string): boolean {
  if (statement.OrStatement) {
    return (statement.OrStatement.Statements as any[]).some((s) => matches(s, uriPath));
  }
  if (statement.AndStatement) {
    return (statement.AndStatement.Statements as any[]).every((s) => matches(s, uriPath));
  }
  if (statement.NotStatement) {
    return !matches(statement.NotStatement.Statement, uriPath);
  }
  const byte = statement.ByteMatchStatement;
  if (!byte || Object.keys(statement).length !== 1) throw new Error(`unsupported statement ${JSON.stringify(statement)}`);
  if (JSON.stringify(byte.FieldToMatch) !== '{"UriPath":{}}') throw new Error(`unsupported field ${JSON.stringify(byte.FieldToMatch)}`);
  const transforms = [...(byte.TextTransformations as any[])].sort((a, b) => a.Priority - b.Priority);
  const value = transforms.reduce((v: string, t: any): string => {
    switch (t.Type) {
      case 'URL_DECODE':
        return decodeURIComponent(v);
      case 'NORMALIZE_PATH':
        return v.replace(/\/{2,}/g, '/').replace(/\/\.(?=\/|$)/g, '');
      case 'LOWERCASE':
        return v.toLowerCase();
      default:
        throw new Error(`unsupported text transformation ${t.Type}`);
    }
  }, uriPath);
  const needle: string = byte.SearchString;
  switch (byte.PositionalConstraint) {
    case 'EXACTLY':
      return value === needle;
    case 'STARTS_WITH':
      return value.startsWith(needle);
    case 'ENDS_WITH':
      return value.endsWith(needle);
    case 'CONTAINS':
      return value.includes(needle);
    default:
      throw new Error(`unsupported positional constraint ${byte.PositionalConstraint}`);
  }
}

describe('WAF', () => {
  const { template } = stageTemplate('dev');

  test('regional web ACL with the three managed rule groups', () => {
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

  test.each<StageName>(['dev', 'prod'])('%s: one per-IP rate rule per exposure, limits and window from config, blocking', (stage) => {
    const waf = stageSettings(stage).waf;
    const rules = rateRules(stage === 'dev' ? template : stageTemplate('prod').template);
    expect(rules.map((r) => r.Name).sort()).toEqual(['ExpensiveEndpointsRateLimit', 'TokenEndpointsRateLimit']);
    for (const rule of rules) {
      const exposure = rule.Name === 'ExpensiveEndpointsRateLimit' ? 'expensive' : 'token';
      expect(rule.Action).toEqual({ Block: {} });
      expect(rule.Statement.RateBasedStatement).toMatchObject({
        AggregateKeyType: 'IP',
        Limit: waf.authRateLimits[exposure],
        EvaluationWindowSec: waf.authRateWindowSeconds,
      });
    }
    expect(waf.authRateLimits.expensive).not.toBe(waf.authRateLimits.token);
  });

  test.each(Object.keys(EXPOSURE))('%s is counted by the rate rule of its exposure only', (route) => {
    const path = route.split(' ')[1];
    const expected = { expensive: ['ExpensiveEndpointsRateLimit'], token: ['TokenEndpointsRateLimit'], light: [] }[EXPOSURE[route]];
    const rules = rateRules(template);
    // The stage segment precedes the route path; a trailing slash, an encoded or upper-case letter
    // and a doubled slash must not step around the rule.
    const variants = [`/dev${path}`, `/dev${path}/`, `/dev${path.toUpperCase()}`, `/dev${path.replace(/o/, '%6F')}`, `/dev${path.replace('/', '//')}`];
    for (const uri of variants) {
      expect([uri, rules.filter((r) => matches(r.Statement.RateBasedStatement.ScopeDownStatement, uri)).map((r) => r.Name)]).toEqual([uri, expected]);
    }
  });

  test('every OR and AND in the rate rules has the two statements WAF requires', () => {
    const lists: any[] = [];
    const walk = (node: any): void => {
      if (node && typeof node === 'object') {
        if (node.OrStatement) lists.push(node.OrStatement);
        if (node.AndStatement) lists.push(node.AndStatement);
        Object.values(node).forEach(walk);
      }
    };
    rateRules(template).forEach(walk);
    // The AND that keeps /auth/mfa/totp/activate (expensive) out of /auth/mfa/totp's (token) match.
    expect(lists.some((l) => JSON.stringify(l).includes('/auth/mfa/totp/activate') && l.Statements.some((s: any) => s.NotStatement))).toBe(true);
    for (const list of lists) {
      expect(list.Statements.length).toBeGreaterThanOrEqual(2);
    }
  });

  test.each<StageName>(['dev', 'prod'])('%s: every /auth/mfa route is counted by a rate rule, /auth/mfa/verify by the login\'s', (stage) => {
    const rules = rateRules(stageTemplate(stage).template);
    const counting = (uri: string): string[] => rules.filter((r) => matches(r.Statement.RateBasedStatement.ScopeDownStatement, uri)).map((r) => r.Name);
    expect(counting(`/${stage}/auth/login`)).toEqual(['ExpensiveEndpointsRateLimit']);
    expect(counting(`/${stage}/auth/mfa/verify`)).toEqual(['ExpensiveEndpointsRateLimit']);
    const mfa = Object.keys(EXPOSURE).map((k) => k.split(' ')[1]).filter((p) => p.startsWith('/auth/mfa/'));
    expect(mfa.sort()).toEqual(['/auth/mfa/recovery-codes', '/auth/mfa/totp', '/auth/mfa/totp/activate', '/auth/mfa/totp/disable', '/auth/mfa/verify']);
    for (const path of mfa) {
      expect([path, counting(`/${stage}${path}`)]).toEqual([path, [expect.stringMatching(/^(Expensive|Token)EndpointsRateLimit$/)]]);
    }
  });

  test.each<StageName>(['dev', 'prod'])('%s: the web ACL stays within the 1,500 WCUs its base price includes', (stage) => {
    // The documented costs (AWS WAF developer guide): the managed groups' fixed capacities, 2 per
    // rate-based statement, a string match 10 (CONTAINS) or 2, plus 10 per text transformation;
    // logical statements cost only what they nest. WAF may charge less (shared transformations),
    // never more, so this is an upper bound.
    const MANAGED: Record<string, number> = {
      AWSManagedRulesAmazonIpReputationList: 25,
      AWSManagedRulesCommonRuleSet: 700,
      AWSManagedRulesKnownBadInputsRuleSet: 200,
    };
    const cost = (st: any): number => {
      if (st.ManagedRuleGroupStatement) return MANAGED[st.ManagedRuleGroupStatement.Name] ?? Infinity;
      if (st.RateBasedStatement) return 2 + cost(st.RateBasedStatement.ScopeDownStatement);
      if (st.OrStatement) return st.OrStatement.Statements.reduce((n: number, x: any) => n + cost(x), 0);
      if (st.AndStatement) return st.AndStatement.Statements.reduce((n: number, x: any) => n + cost(x), 0);
      if (st.NotStatement) return cost(st.NotStatement.Statement);
      if (st.ByteMatchStatement) return (st.ByteMatchStatement.PositionalConstraint === 'CONTAINS' ? 10 : 2) + 10 * st.ByteMatchStatement.TextTransformations.length;
      throw new Error(`no WCU cost for ${JSON.stringify(st)}`);
    };
    const acl = Object.values(resourcesOfType(stageTemplate(stage).template, 'AWS::WAFv2::WebACL'))[0].Properties!;
    const total = (acl.Rules as any[]).reduce((n, r) => n + cost(r.Statement), 0);
    expect(total).toBeLessThanOrEqual(1500);
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
