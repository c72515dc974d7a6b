import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { StageSettings } from '../../config';
import { KeygateTable } from '../data/table';
import { KeygateFunction } from '../functions/rust-function';
import { acknowledgeMailDeadLetterQueue } from '../nag';

/** The outbox items the mailer sends (handlers/aws/src/dynamo.rs: pk OUTBOX#<id>, sk MAIL). */
export const OUTBOX_PK_PREFIX = 'OUTBOX#';
export const OUTBOX_SK = 'MAIL';

/** Stream records per invocation: each is one SES call, and a failure retries the rest of the batch. */
export const MAILER_BATCH_SIZE = 10;
/** Retries of a failing batch before its records go to the dead-letter queue. */
export const MAILER_RETRY_ATTEMPTS = 5;

export interface OutboxDeliveryProps {
  readonly settings: StageSettings;
  readonly table: KeygateTable;
  /** The mailer function (KEYGATE_FUNCTION=mailer). */
  readonly mailer: KeygateFunction;
}

/**
 * The mailer's trigger: an event source mapping from the table's stream that admits only the
 * inserts of outbox items (Lambda filters before invoking, so the users' and tokens' writes cost
 * no invocation), with the mailer's batch item failures, bounded retries and a dead-letter queue.
 *
 * - Starting position LATEST: the mailer sends from the stream image and does not look up the
 *   item, so a mapping created again (a replacement) starting at TRIM_HORIZON would resend up to
 *   24 hours of mails already delivered, codes included. LATEST loses only mails queued while no
 *   mapping exists (the first deploy, a replacement); their owners ask again after the cooldown.
 * - Records older than the password-reset TTL are not retried: a reset mail is useless by then,
 *   and a stream shard holds every later record back while one is retried.
 * - bisectBatchOnError: a batch whose invocation fails outright (a crash, a timeout) is split, so a
 *   record that kills the function ends in the queue alone instead of taking its batch along.
 * - The dead-letter queue receives the batch's stream coordinates (shard, sequence numbers), not
 *   the sealed mails; docs/aws.md says how to read them.
 */
export class OutboxDelivery extends Construct {
  readonly deadLetterQueue: sqs.Queue;
  readonly mapping: lambda.EventSourceMapping;

  constructor(scope: Construct, id: string, props: OutboxDeliveryProps) {
    super(scope, id);
    const { settings, table } = props;
    const mailer = props.mailer.fn;
    const streamArn = table.table.tableStreamArn;
    if (!streamArn) {
      throw new Error('the keygate table has no stream: the mailer reads the outbox from it');
    }

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      // SQS-managed encryption at rest: the messages are stream coordinates, not mail.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    acknowledgeMailDeadLetterQueue(this.deadLetterQueue);

    // The stream records (and the table key they are encrypted with, granted with the table's
    // writes) and nothing else; the mapping reads the stream with the function's role.
    mailer.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadTableStream',
        actions: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
        resources: [streamArn],
      }),
    );

    this.mapping = new lambda.EventSourceMapping(this, 'OutboxInserts', {
      target: mailer,
      eventSourceArn: streamArn,
      startingPosition: lambda.StartingPosition.LATEST,
      batchSize: MAILER_BATCH_SIZE,
      parallelizationFactor: 1,
      reportBatchItemFailures: true,
      bisectBatchOnError: true,
      retryAttempts: MAILER_RETRY_ATTEMPTS,
      maxRecordAge: Duration.seconds(settings.mail.passwordResetTtlSeconds),
      onFailure: new SqsDlq(this.deadLetterQueue),
      filters: [
        lambda.FilterCriteria.filter({
          eventName: lambda.FilterRule.isEqual('INSERT'),
          dynamodb: { Keys: { pk: { S: lambda.FilterRule.beginsWith(OUTBOX_PK_PREFIX) }, sk: { S: lambda.FilterRule.isEqual(OUTBOX_SK) } } },
        }),
      ],
    });
    // Lambda checks the role's stream access when the mapping is created: the grant comes first.
    this.mapping.node.addDependency(props.mailer.role);
  }
}
