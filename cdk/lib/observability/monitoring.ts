import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { FUNCTION_NAMES, FunctionName, StageSettings, metricsNamespace } from '../../config';
import { CONTRACT, metricName } from '../contract';

export interface MonitoringProps {
  readonly settings: StageSettings;
  /**
   * The API's 5xx and latency metrics: a REST stage's (5XXError, Latency by ApiName and Stage) or
   * an HTTP API's (5xx, Latency by ApiId), both in AWS/ApiGateway.
   */
  readonly api: ApiMetrics;
  readonly table: dynamodb.Table;
  readonly functions: Readonly<Record<FunctionName, lambda.Function>>;
  /** The on-failure destination of the mailer's stream mapping. */
  readonly mailDeadLetterQueue: sqs.IQueue;
}

export interface ApiMetrics {
  metricServerError(props?: cloudwatch.MetricOptions): cloudwatch.Metric;
  metricLatency(props?: cloudwatch.MetricOptions): cloudwatch.Metric;
}

const PERIOD = Duration.minutes(5);
/**
 * SES updates the account's reputation rates a few times an hour at most, over a window of its
 * own: the alarms take the highest value in an hour.
 */
const REPUTATION_PERIOD = Duration.hours(1);

/**
 * Alarms to an encrypted SNS topic and one dashboard over the same signals: API 5xx rate and p95
 * latency, the functions' EMF metrics LoginFailed, MfaFailed and RefreshReuseDetected (every counter
 * on the dashboard), DynamoDB throttling,
 * errors and throttles of every function, and mail: a message in the mailer's dead-letter queue,
 * mails dropped, the mailer falling behind its stream, and the SES account's bounce and complaint
 * rates.
 */
export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { settings, api, table } = props;
    const t = settings.observability.alarms;
    const prefix = `keygate-${settings.stageName}`;
    const namespace = metricsNamespace(settings.stageName);

    const topicKey = new kms.Key(this, 'TopicKey', {
      description: `keygate ${settings.stageName}: encryption of the alarm topic`,
      enableKeyRotation: true,
      removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch alarms publish to the encrypted topic: they need the key, for this account only.
    topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `keygate ${settings.stageName} alarms`,
      masterKey: topicKey,
      enforceSSL: true,
    });
    if (settings.observability.alarmEmail) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(settings.observability.alarmEmail));
    }
    const notify = new actions.SnsAction(this.topic);

    const alarm = (
      id: string,
      metric: cloudwatch.IMetric,
      threshold: number,
      description: string,
      comparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ): cloudwatch.Alarm => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmName: `${prefix}-${id}`,
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(notify);
      a.addOkAction(notify);
      this.alarms.push(a);
      return a;
    };

    // API
    const api5xx = api.metricServerError({ statistic: cloudwatch.Stats.AVERAGE, period: PERIOD });
    const apiP95 = api.metricLatency({ statistic: cloudwatch.Stats.percentile(95), period: PERIOD });
    alarm('api-5xx-rate', api5xx, t.api5xxRatePercent / 100, `API 5XX responses >= ${t.api5xxRatePercent}% of requests over 5 minutes`, cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD);
    alarm('api-p95-latency', apiP95, t.apiP95LatencyMs, `API p95 latency >= ${t.apiP95LatencyMs} ms over 5 minutes`);

    // Security signals from the functions' EMF metrics; each name is checked against the contract's.
    const emf = (name: string): cloudwatch.Metric =>
      new cloudwatch.Metric({ namespace, metricName: metricName(name), statistic: cloudwatch.Stats.SUM, period: PERIOD });
    const loginFailed = emf('LoginFailed');
    alarm('login-failed-spike', loginFailed, t.loginFailedPer5Minutes, `${loginFailed.metricName} >= ${t.loginFailedPer5Minutes} in 5 minutes: credential stuffing or an outage of the login path`);
    // Wrong second-factor codes: each challenge takes a correct password first and allows 5 codes,
    // so a spike is someone holding passwords and guessing codes (or an authenticator clock adrift).
    const mfaFailed = emf('MfaFailed');
    alarm('mfa-failed-spike', mfaFailed, t.mfaFailedPer5Minutes, `${mfaFailed.metricName} >= ${t.mfaFailedPer5Minutes} in 5 minutes: second-factor codes guessed with known passwords, or an outage of the MFA path`);
    alarm('refresh-reuse-detected', emf('RefreshReuseDetected'), t.refreshReusePer5Minutes, 'A used refresh token was presented again: a token family was revoked (possible token theft)');

    // DynamoDB
    const ddbThrottles = new cloudwatch.MathExpression({
      expression: 'FILL(r, 0) + FILL(w, 0)',
      usingMetrics: {
        r: table.metric('ReadThrottleEvents', { statistic: cloudwatch.Stats.SUM, period: PERIOD }),
        w: table.metric('WriteThrottleEvents', { statistic: cloudwatch.Stats.SUM, period: PERIOD }),
      },
      label: 'throttle events',
      period: PERIOD,
    });
    alarm('dynamodb-throttles', ddbThrottles, t.dynamoThrottlesPer5Minutes, 'DynamoDB read or write throttle events on the keygate table');

    // Mail. The reputation rates are the account's (AWS/SES, no dimension): the numbers SES reviews
    // and pauses an account on, whatever configuration set or stage sent the mail; counting the
    // configuration set's bounce events instead would need a rate computed over a window unlike SES's.
    const dlqMessages = props.mailDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: cloudwatch.Stats.MAXIMUM, period: PERIOD });
    alarm('mail-dead-letters', dlqMessages, 1, 'The mailer gave up on a stream batch (its retries or record age ran out): mails were not sent; see docs/aws.md, "Mail"');
    const iteratorAge = props.functions.mailer.metric('IteratorAge', { statistic: cloudwatch.Stats.MAXIMUM, period: PERIOD });
    alarm('mailer-iterator-age', iteratorAge, t.mailerIteratorAgeSeconds * 1000, `The mailer is ${t.mailerIteratorAgeSeconds} s or more behind the table stream: mails are delayed`);
    const mailDropped = emf('MailDropped');
    alarm('mail-dropped', mailDropped, t.mailDroppedPer5Minutes, `${mailDropped.metricName} >= ${t.mailDroppedPer5Minutes} in 5 minutes: SES refused mails for good (a sandbox recipient, a bad sender) and users got no link`);
    const reputation = (metricName: string): cloudwatch.Metric =>
      new cloudwatch.Metric({ namespace: 'AWS/SES', metricName, statistic: cloudwatch.Stats.MAXIMUM, period: REPUTATION_PERIOD });
    const bounceRate = reputation('Reputation.BounceRate');
    const complaintRate = reputation('Reputation.ComplaintRate');
    alarm('ses-bounce-rate', bounceRate, t.sesBounceRatePercent / 100, `SES account bounce rate >= ${t.sesBounceRatePercent}% (SES reviews the account at 5%)`);
    alarm('ses-complaint-rate', complaintRate, t.sesComplaintRatePercent / 100, `SES account complaint rate >= ${t.sesComplaintRatePercent}% (SES reviews the account at 0.1%)`);

    // Lambda, per function
    const errorMetrics: cloudwatch.IMetric[] = [];
    const throttleMetrics: cloudwatch.IMetric[] = [];
    for (const name of FUNCTION_NAMES) {
      const fn = props.functions[name];
      const errors = fn.metricErrors({ statistic: cloudwatch.Stats.SUM, period: PERIOD });
      const throttles = fn.metricThrottles({ statistic: cloudwatch.Stats.SUM, period: PERIOD });
      errorMetrics.push(errors.with({ label: name }));
      throttleMetrics.push(throttles.with({ label: name }));
      alarm(`${name}-errors`, errors, t.lambdaErrorsPer5Minutes, `${name}: function errors >= ${t.lambdaErrorsPer5Minutes} in 5 minutes`);
      alarm(`${name}-throttles`, throttles, t.lambdaThrottlesPer5Minutes, `${name}: throttled invocations`);
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: prefix,
      defaultInterval: Duration.hours(6),
      widgets: [
        [
          new cloudwatch.GraphWidget({ title: 'API 5XX rate', left: [api5xx], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'API p95 latency (ms)', left: [apiP95], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'DynamoDB throttle events', left: [ddbThrottles], width: 8 }),
        ],
        [
          // Every counter the functions emit (cdk/contract.json), so a new audit metric shows up here.
          new cloudwatch.GraphWidget({ title: 'Audit events (count per 5 minutes)', left: CONTRACT.metrics.counters.map(emf), width: 24 }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Lambda errors', left: errorMetrics, width: 12 }),
          new cloudwatch.GraphWidget({ title: 'Lambda throttles', left: throttleMetrics, width: 12 }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Mail dead letters and drops', left: [dlqMessages, mailDropped], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Mailer iterator age (ms)', left: [iteratorAge], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'SES reputation (account)', left: [bounceRate.with({ label: 'bounce rate' }), complaintRate.with({ label: 'complaint rate' })], width: 8 }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Request latency (functions, p95 ms)',
            left: [new cloudwatch.Metric({ namespace, metricName: CONTRACT.metrics.latency, statistic: cloudwatch.Stats.percentile(95), period: PERIOD })],
            width: 12,
          }),
          new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 12, height: 8 }),
        ],
      ],
    });
  }
}
