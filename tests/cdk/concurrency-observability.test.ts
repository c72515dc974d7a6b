import { Match } from 'aws-cdk-lib/assertions';
import { FUNCTION_NAMES, stageSettings } from '../../cdk/config';
import { API_FUNCTIONS } from '../../cdk/lib/catalog';
import { customTemplate, logicalId, resourcesOfType, stageTemplate } from './helpers';

describe('live aliases and provisioned concurrency', () => {
  test('every API function has a live alias; the mailer and rotate-keys do not need one', () => {
    const { template } = stageTemplate('dev');
    const aliases = Object.values(resourcesOfType(template, 'AWS::Lambda::Alias'));
    expect(aliases).toHaveLength(API_FUNCTIONS.length);
    expect(API_FUNCTIONS).toHaveLength(10);
    expect(API_FUNCTIONS).not.toContain('mailer');
    for (const a of aliases) {
      expect(a.Properties!.Name).toBe('live');
      expect(a.Properties!.FunctionVersion).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/CurrentVersion/), 'Version'] });
    }
  });

  test('dev: no provisioned concurrency and no scaling at all', () => {
    const { template } = stageTemplate('dev');
    for (const a of Object.values(resourcesOfType(template, 'AWS::Lambda::Alias'))) {
      expect(a.Properties!.ProvisionedConcurrencyConfig).toBeUndefined();
    }
    template.resourceCountIs('AWS::ApplicationAutoScaling::ScalableTarget', 0);
  });

  test('prod: login and refresh keep a floor and scale on a business-hours schedule in the named time zone', () => {
    const { template } = stageTemplate('prod');
    const aliases = resourcesOfType(template, 'AWS::Lambda::Alias');
    const warm = Object.entries(aliases).filter(([, a]) => a.Properties!.ProvisionedConcurrencyConfig);
    expect(warm.map(([id]) => id.replace(/live.*$/, '')).sort()).toEqual(['Concurrencylogin', 'Concurrencyrefresh']);
    for (const [, a] of warm) {
      expect(a.Properties!.ProvisionedConcurrencyConfig).toEqual({ ProvisionedConcurrentExecutions: 1 });
    }
    const targets = Object.values(resourcesOfType(template, 'AWS::ApplicationAutoScaling::ScalableTarget'));
    expect(targets).toHaveLength(2);
    for (const t of targets) {
      const p = t.Properties!;
      expect(p.ScalableDimension).toBe('lambda:function:ProvisionedConcurrency');
      expect(p.MinCapacity).toBe(1);
      expect(p.MaxCapacity).toBe(20);
      const actions = p.ScheduledActions as any[];
      expect(actions).toHaveLength(2);
      const start = actions.find((a) => a.ScheduledActionName.includes('BusinessHoursStart'));
      const end = actions.find((a) => a.ScheduledActionName.includes('BusinessHoursEnd'));
      expect(start).toMatchObject({ Schedule: 'cron(0 7 ? * MON-FRI *)', Timezone: 'America/New_York', ScalableTargetAction: { MinCapacity: 5 } });
      expect(end).toMatchObject({ Schedule: 'cron(0 20 ? * MON-FRI *)', Timezone: 'America/New_York', ScalableTargetAction: { MinCapacity: 1 } });
    }
    template.resourcePropertiesCountIs(
      'AWS::ApplicationAutoScaling::ScalingPolicy',
      { TargetTrackingScalingPolicyConfiguration: Match.objectLike({ PredefinedMetricSpecification: { PredefinedMetricType: 'LambdaProvisionedConcurrencyUtilization' } }) },
      2,
    );
  });

  test('staging runs the same schedule at small scale', () => {
    const { template } = stageTemplate('staging');
    template.resourceCountIs('AWS::ApplicationAutoScaling::ScalableTarget', 2);
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 1, MaxCapacity: 2 });
  });
});

describe('observability', () => {
  const { template } = stageTemplate('dev');

  test('an encrypted alarm topic that refuses plain HTTP; email subscription only when configured', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  test('alarm email from the settings subscribes to the topic', () => {
    const { customTemplate } = require('./helpers') as typeof import('./helpers');
    const t = customTemplate('prod', (s) => ({ ...s, observability: { ...s.observability, alarmEmail: 'oncall@example.com' } }));
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
  });

  const alarm = (name: string) => {
    const a = Object.values(resourcesOfType(template, 'AWS::CloudWatch::Alarm')).find((x) => x.Properties!.AlarmName === `keygate-dev-${name}`);
    if (!a) throw new Error(`no alarm ${name}`);
    return a.Properties!;
  };

  test('every alarm notifies the topic', () => {
    const topicId = logicalId(template, 'AWS::SNS::Topic', 'ObservabilityAlarmTopic');
    for (const a of Object.values(resourcesOfType(template, 'AWS::CloudWatch::Alarm'))) {
      expect(a.Properties!.AlarmActions).toEqual([{ Ref: topicId }]);
    }
  });

  test('API 5xx rate and p95 latency on the stage', () => {
    expect(alarm('api-5xx-rate')).toMatchObject({ MetricName: '5XXError', Namespace: 'AWS/ApiGateway', Statistic: 'Average', Threshold: 0.05 });
    const stageId = logicalId(template, 'AWS::ApiGateway::Stage', '');
    expect(alarm('api-5xx-rate').Dimensions).toEqual([
      { Name: 'ApiName', Value: 'keygate-dev' },
      { Name: 'Stage', Value: { Ref: stageId } },
    ]);
    expect(alarm('api-p95-latency')).toMatchObject({ MetricName: 'Latency', ExtendedStatistic: 'p95', Threshold: 2000 });
  });

  test('LoginFailed spike and RefreshReuseDetected from the EMF namespace, no dimensions', () => {
    expect(alarm('login-failed-spike')).toMatchObject({ Namespace: 'Keygate/dev', MetricName: 'LoginFailed', Statistic: 'Sum', Threshold: 50 });
    expect(alarm('login-failed-spike').Dimensions).toBeUndefined();
    expect(alarm('refresh-reuse-detected')).toMatchObject({ Namespace: 'Keygate/dev', MetricName: 'RefreshReuseDetected', Statistic: 'Sum', Threshold: 1 });
  });

  test('MfaFailed spike from the EMF namespace, to the same topic as LoginFailed, threshold from the settings', () => {
    const dev = stageSettings('dev').observability.alarms;
    expect(alarm('mfa-failed-spike')).toMatchObject({
      Namespace: 'Keygate/dev',
      MetricName: 'MfaFailed',
      Statistic: 'Sum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: dev.mfaFailedPer5Minutes,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(alarm('mfa-failed-spike').Dimensions).toBeUndefined();
    expect(alarm('mfa-failed-spike').AlarmActions).toEqual(alarm('login-failed-spike').AlarmActions);
    expect(alarm('mfa-failed-spike').OKActions).toEqual(alarm('login-failed-spike').OKActions);
    const custom = customTemplate('dev', (s) => ({ ...s, observability: { ...s.observability, alarms: { ...s.observability.alarms, mfaFailedPer5Minutes: 7 } } }));
    const a = Object.values(resourcesOfType(custom, 'AWS::CloudWatch::Alarm')).find((x) => x.Properties!.AlarmName === 'keygate-dev-mfa-failed-spike');
    expect(a?.Properties!.Threshold).toBe(7);
  });

  test('with the HTTP API kind too, the MfaFailed alarm exists', () => {
    const http = customTemplate('dev', (s) => ({ ...s, api: { ...s.api, kind: 'http' } }));
    http.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'keygate-dev-mfa-failed-spike', MetricName: 'MfaFailed', Namespace: 'Keygate/dev' });
  });

  test('DynamoDB throttles of the table', () => {
    const metrics = alarm('dynamodb-throttles').Metrics as any[];
    const names = metrics.filter((m) => m.MetricStat).map((m) => m.MetricStat.Metric.MetricName).sort();
    expect(names).toEqual(['ReadThrottleEvents', 'WriteThrottleEvents']);
  });

  test('errors and throttles for each of the twelve functions', () => {
    expect(FUNCTION_NAMES).toHaveLength(12);
    for (const fn of FUNCTION_NAMES) {
      expect(alarm(`${fn}-errors`)).toMatchObject({ MetricName: 'Errors', Namespace: 'AWS/Lambda' });
      expect(alarm(`${fn}-throttles`)).toMatchObject({ MetricName: 'Throttles', Namespace: 'AWS/Lambda' });
    }
    // 6 API, EMF and table alarms, 5 mail alarms, 2 per function.
    template.resourceCountIs('AWS::CloudWatch::Alarm', 6 + 5 + 2 * FUNCTION_NAMES.length);
  });

  test('mail: a message in the dead-letter queue, the mailer behind its stream, the SES reputation rates', () => {
    const queueId = logicalId(template, 'AWS::SQS::Queue', 'OutboxDeadLetterQueue');
    expect(alarm('mail-dead-letters')).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    const mailerId = logicalId(template, 'AWS::Lambda::Function', 'FunctionsMailerFunction');
    expect(alarm('mailer-iterator-age')).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'IteratorAge',
      Statistic: 'Maximum',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: mailerId } }],
      Threshold: 300_000,
    });
    // Account-level rates (no dimension), as fractions: 2% and 0.05%.
    expect(alarm('ses-bounce-rate')).toMatchObject({ Namespace: 'AWS/SES', MetricName: 'Reputation.BounceRate', Statistic: 'Maximum', Threshold: 0.02, Period: 3600 });
    expect(alarm('ses-complaint-rate')).toMatchObject({ Namespace: 'AWS/SES', MetricName: 'Reputation.ComplaintRate', Threshold: 0.0005 });
    expect(alarm('ses-bounce-rate').Dimensions).toBeUndefined();
    expect(alarm('mail-dropped')).toMatchObject({ MetricName: 'MailDropped', Statistic: 'Sum', Threshold: 5 });
  });

  test('one dashboard with the same signals', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const body = JSON.stringify(Object.values(resourcesOfType(template, 'AWS::CloudWatch::Dashboard'))[0].Properties!.DashboardBody);
    for (const signal of ['5XXError', 'Latency', 'LoginFailed', 'RefreshReuseDetected', 'ReadThrottleEvents', 'Errors', 'Throttles', 'MailQueued', 'MailSuppressed', 'PasswordResetCompleted', 'IteratorAge', 'Reputation.BounceRate', 'MfaFactorChanged', 'MfaChallenged', 'MfaVerified', 'MfaFailed']) {
      expect(body).toContain(signal);
    }
  });
});

describe('outputs', () => {
  test('ApiUrl, JwksUrl, Issuer, TableName, the DKIM records, the mail topic and dead-letter queue', () => {
    const { template } = stageTemplate('dev');
    const outputs = template.findOutputs('*');
    expect(Object.keys(outputs).sort()).toEqual([
      'ApiUrl',
      'Issuer',
      'JwksUrl',
      'MailDeadLetterQueueUrl',
      'MailDkimRecord1',
      'MailDkimRecord2',
      'MailDkimRecord3',
      'MailEventsTopicArn',
      'TableName',
    ]);
    const identityId = logicalId(template, 'AWS::SES::EmailIdentity', 'MailIdentity');
    expect(outputs.MailDkimRecord1.Value).toEqual({
      'Fn::Join': [' ', [{ 'Fn::GetAtt': [identityId, 'DkimDNSTokenName1'] }, 'CNAME', { 'Fn::GetAtt': [identityId, 'DkimDNSTokenValue1'] }]],
    });
    const tableId = logicalId(template, 'AWS::DynamoDB::Table', 'DataTable');
    expect(outputs.TableName.Value).toEqual({ Ref: tableId });
    expect(JSON.stringify(outputs.JwksUrl.Value)).toContain('/.well-known/jwks.json');
    expect(JSON.stringify(outputs.ApiUrl.Value)).toContain('.execute-api.');
  });

  test('a configured issuer replaces the API URL', () => {
    const { customTemplate } = require('./helpers') as typeof import('./helpers');
    const t = customTemplate('prod', (s) => ({ ...s, auth: { ...s.auth, issuer: 'https://auth.example.com' } }));
    expect(t.findOutputs('Issuer').Issuer.Value).toBe('https://auth.example.com');
    // Every function that reads the issuer (all but the mailer, which signs and verifies nothing).
    const fns = Object.values(t.findResources('AWS::Lambda::Function')).filter((f) => f.Properties.Environment.Variables.KEYGATE_FUNCTION !== 'mailer');
    expect(fns).toHaveLength(11);
    for (const f of fns) {
      expect(f.Properties.Environment.Variables.KEYGATE_ISSUER).toBe('https://auth.example.com');
    }
  });
});
