import { FUNCTION_NAMES, stageSettings } from '../../cdk/config';
import { MAILER_BATCH_SIZE, MAILER_RETRY_ATTEMPTS } from '../../cdk/lib/mail/outbox-delivery';
import { customTemplate, logicalId, resourcesOfType, stageTemplate } from './helpers';

/** Every statement of every policy attached to the role of the function whose KEYGATE_FUNCTION is `name`. */
function roleStatements(template: ReturnType<typeof stageTemplate>['template'], name: string): any[] {
  const fnEntry = Object.values(resourcesOfType(template, 'AWS::Lambda::Function')).find((f) => f.Properties!.Environment.Variables.KEYGATE_FUNCTION === name)!;
  const roleId = fnEntry.Properties!.Role['Fn::GetAtt'][0] as string;
  return Object.values(resourcesOfType(template, 'AWS::IAM::Policy'))
    .filter((p) => (p.Properties!.Roles as any[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties!.PolicyDocument.Statement as any[]);
}

const actionsOf = (s: any): string[] => ([] as string[]).concat(s.Action);

describe('mail', () => {
  const { template } = stageTemplate('dev');
  const dev = stageSettings('dev');
  const tableId = logicalId(template, 'AWS::DynamoDB::Table', 'DataTable');
  const mailerId = logicalId(template, 'AWS::Lambda::Function', 'FunctionsMailerFunction');
  const queueId = logicalId(template, 'AWS::SQS::Queue', 'OutboxDeadLetterQueue');
  const identityId = logicalId(template, 'AWS::SES::EmailIdentity', 'MailIdentity');
  const setId = logicalId(template, 'AWS::SES::ConfigurationSet', 'MailConfigurationSet');

  test('the table streams new images', () => {
    expect(resourcesOfType(template, 'AWS::DynamoDB::Table')[tableId].Properties!.StreamSpecification).toEqual({ StreamViewType: 'NEW_IMAGE' });
  });

  test('the mailer reads the stream: outbox inserts only, batch item failures, bounded retries, a dead-letter queue', () => {
    const mappings = Object.values(resourcesOfType(template, 'AWS::Lambda::EventSourceMapping'));
    expect(mappings).toHaveLength(1);
    const m = mappings[0].Properties!;
    expect(m).toMatchObject({
      FunctionName: { Ref: mailerId },
      EventSourceArn: { 'Fn::GetAtt': [tableId, 'StreamArn'] },
      StartingPosition: 'LATEST',
      BatchSize: MAILER_BATCH_SIZE,
      ParallelizationFactor: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: MAILER_RETRY_ATTEMPTS,
      // Mails die with their codes; a reset code lives 15 minutes.
      MaximumRecordAgeInSeconds: dev.mail.passwordResetTtlSeconds,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queueId, 'Arn'] } } },
    });
    expect(MAILER_BATCH_SIZE).toBeLessThanOrEqual(10);
    expect(MAILER_RETRY_ATTEMPTS).toBeGreaterThan(0);
    expect(m.FilterCriteria.Filters).toHaveLength(1);
    expect(JSON.parse(m.FilterCriteria.Filters[0].Pattern)).toEqual({
      eventName: ['INSERT'],
      dynamodb: { Keys: { pk: { S: [{ prefix: 'OUTBOX#' }] }, sk: { S: ['MAIL'] } } },
    });
    // Created after the role's grants, which Lambda checks when it creates the mapping.
    const dependsOn = ([] as string[]).concat(mappings[0].DependsOn ?? []);
    expect(dependsOn.some((d) => d.startsWith('FunctionsMailerRoleDefaultPolicy'))).toBe(true);
  });

  test('the dead-letter queue is encrypted, TLS-only, keeps messages 14 days', () => {
    const q = resourcesOfType(template, 'AWS::SQS::Queue')[queueId];
    expect(q.Properties).toMatchObject({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 });
    const policy = Object.values(resourcesOfType(template, 'AWS::SQS::QueuePolicy')).find((p) => JSON.stringify(p.Properties!.Queues).includes(queueId))!;
    expect(JSON.stringify(policy.Properties!.PolicyDocument)).toContain('"aws:SecureTransport":"false"');
    // dev destroys it with the stack, prod keeps it.
    expect(q.DeletionPolicy).toBe('Delete');
    const prod = stageTemplate('prod').template;
    expect(resourcesOfType(prod, 'AWS::SQS::Queue')[logicalId(prod, 'AWS::SQS::Queue', 'OutboxDeadLetterQueue')].DeletionPolicy).toBe('Retain');
  });

  test('mailer IAM: delete on the table, the stream, the server key, the dead-letter queue, and SendEmail as the stage identity only', () => {
    const stmts = roleStatements(template, 'mailer');
    const bySid = Object.fromEntries(stmts.filter((s) => s.Sid).map((s) => [s.Sid, s]));
    expect(bySid.TableItems).toMatchObject({ Action: 'dynamodb:DeleteItem', Resource: { 'Fn::GetAtt': [tableId, 'Arn'] } });
    expect(bySid.ReadTableStream).toMatchObject({
      Action: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
      Resource: { 'Fn::GetAtt': [tableId, 'StreamArn'] },
    });
    expect(bySid.ReadServerKey).toMatchObject({ Action: 'secretsmanager:GetSecretValue', Resource: { Ref: logicalId(template, 'AWS::SecretsManager::Secret', 'KeysServerKey') } });
    expect(bySid.SendAsStageIdentity.Action).toBe('ses:SendEmail');
    const arn = (kind: string, id: string) => ({ 'Fn::Join': ['', ['arn:aws:ses:us-east-1:', { Ref: 'AWS::AccountId' }, `:${kind}/`, { Ref: id }]] });
    expect(bySid.SendAsStageIdentity.Resource).toEqual(expect.arrayContaining([arn('identity', identityId), arn('configuration-set', setId)]));
    expect(bySid.SendAsStageIdentity.Resource).toHaveLength(2);
    // ses: in that statement and nowhere else; no raw mail.
    expect(stmts.filter((s) => actionsOf(s).some((a) => a.startsWith('ses:')))).toEqual([bySid.SendAsStageIdentity]);
    // The on-failure destination: Lambda sends with the function's role.
    const sqs = stmts.filter((s) => actionsOf(s).some((a) => a.startsWith('sqs:')));
    expect(sqs).toHaveLength(1);
    expect(sqs[0].Resource).toEqual({ 'Fn::GetAtt': [queueId, 'Arn'] });
    expect(actionsOf(sqs[0])).toContain('sqs:SendMessage');
    // No key secret: the mailer signs and verifies nothing.
    expect(stmts.filter((s) => s.Sid === 'ReadSigningKeys' || s.Sid === 'ReadPublicKeys')).toEqual([]);
  });

  test.each(FUNCTION_NAMES.filter((n) => n !== 'mailer'))('%s: no ses action at all', (name) => {
    expect(roleStatements(template, name).flatMap(actionsOf).filter((a) => a.startsWith('ses:'))).toEqual([]);
  });

  test('no role but the mailer\'s has any ses action', () => {
    const mailerRole = resourcesOfType(template, 'AWS::Lambda::Function')[mailerId].Properties!.Role['Fn::GetAtt'][0];
    for (const policy of Object.values(resourcesOfType(template, 'AWS::IAM::Policy'))) {
      const sends = (policy.Properties!.PolicyDocument.Statement as any[]).some((s) => actionsOf(s).some((a) => a.startsWith('ses:')));
      if (sends) {
        expect(policy.Properties!.Roles).toEqual([{ Ref: mailerRole }]);
      }
    }
  });

  test('the stage sender domain is an SES domain identity with Easy DKIM and the configuration set as its default', () => {
    expect(resourcesOfType(template, 'AWS::SES::EmailIdentity')[identityId].Properties).toMatchObject({
      EmailIdentity: 'dev.auth.example.com',
      ConfigurationSetAttributes: { ConfigurationSetName: { Ref: setId } },
    });
    const prod = stageTemplate('prod').template;
    prod.hasResourceProperties('AWS::SES::EmailIdentity', { EmailIdentity: 'auth.example.com' });
  });

  test('the configuration set requires TLS, suppresses bounces and complaints, reports them to an encrypted topic', () => {
    expect(resourcesOfType(template, 'AWS::SES::ConfigurationSet')[setId].Properties).toMatchObject({
      Name: 'keygate-dev',
      DeliveryOptions: { TlsPolicy: 'REQUIRE' },
      ReputationOptions: { ReputationMetricsEnabled: true },
      SendingOptions: { SendingEnabled: true },
      SuppressionOptions: { SuppressedReasons: ['BOUNCE', 'COMPLAINT'] },
    });
    const topicId = logicalId(template, 'AWS::SNS::Topic', 'MailEventsTopic');
    const destinations = Object.values(resourcesOfType(template, 'AWS::SES::ConfigurationSetEventDestination'));
    expect(destinations).toHaveLength(1);
    expect(destinations[0].Properties).toMatchObject({
      ConfigurationSetName: { Ref: setId },
      EventDestination: { Enabled: true, MatchingEventTypes: ['bounce', 'complaint', 'reject'], SnsDestination: { TopicARN: { Ref: topicId } } },
    });
    const topic = resourcesOfType(template, 'AWS::SNS::Topic')[topicId].Properties!;
    const keyId = logicalId(template, 'AWS::KMS::Key', 'MailEventsTopicKey');
    expect(topic.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    // SES may use the key for this account's configuration set only.
    const keyPolicy = resourcesOfType(template, 'AWS::KMS::Key')[keyId].Properties!.KeyPolicy.Statement as any[];
    const ses = keyPolicy.find((s) => s.Sid === 'SesEventsPublish');
    expect(ses).toMatchObject({ Principal: { Service: 'ses.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'] });
    expect(ses.Condition.StringEquals['aws:SourceAccount']).toEqual({ Ref: 'AWS::AccountId' });
    const sourceArn = JSON.stringify(ses.Condition.StringEquals['aws:SourceArn']);
    expect(sourceArn).toContain(':configuration-set/');
    expect(sourceArn).toContain(`{"Ref":"${setId}"}`);
    // The topic policy lets SES publish (for this configuration set) and refuses plain HTTP.
    const topicPolicy = Object.values(resourcesOfType(template, 'AWS::SNS::TopicPolicy')).find((p) => JSON.stringify(p.Properties!.Topics).includes(topicId))!;
    const statements = topicPolicy.Properties!.PolicyDocument.Statement as any[];
    expect(statements.some((s) => s.Principal?.Service === 'ses.amazonaws.com' && s.Action === 'sns:Publish' && s.Condition.StringEquals['AWS:SourceArn'])).toBe(true);
    expect(JSON.stringify(statements)).toContain('"aws:SecureTransport":"false"');
  });

  test('no custom MAIL FROM unless the stage names one; then the identity uses it and the stack outputs its MX and SPF records', () => {
    expect(resourcesOfType(template, 'AWS::SES::EmailIdentity')[identityId].Properties!.MailFromAttributes).toBeUndefined();
    expect(Object.keys(template.findOutputs('*')).filter((k) => k.startsWith('MailFrom'))).toEqual([]);
    const t = customTemplate('dev', (s) => ({ ...s, mail: { ...s.mail, customMailFromDomain: 'bounce.dev.auth.example.com' } }));
    t.hasResourceProperties('AWS::SES::EmailIdentity', {
      EmailIdentity: 'dev.auth.example.com',
      MailFromAttributes: { MailFromDomain: 'bounce.dev.auth.example.com', BehaviorOnMxFailure: 'USE_DEFAULT_VALUE' },
    });
    const outputs = t.findOutputs('*');
    expect(outputs.MailFromMxRecord.Value).toBe('bounce.dev.auth.example.com MX 10 feedback-smtp.us-east-1.amazonses.com');
    expect(outputs.MailFromSpfRecord.Value).toBe('bounce.dev.auth.example.com TXT "v=spf1 include:amazonses.com ~all"');
  });

  test('the sender of every stage is an address of its own identity', () => {
    for (const stage of ['dev', 'staging', 'prod'] as const) {
      const t = stageTemplate(stage).template;
      const mailer = Object.values(resourcesOfType(t, 'AWS::Lambda::Function')).find((f) => f.Properties!.Environment.Variables.KEYGATE_FUNCTION === 'mailer')!;
      const domain = stageSettings(stage).mail.senderDomain;
      expect(mailer.Properties!.Environment.Variables.KEYGATE_MAIL_FROM).toBe(`keygate <no-reply@${domain}>`);
      t.hasResourceProperties('AWS::SES::EmailIdentity', { EmailIdentity: domain });
    }
  });
});
