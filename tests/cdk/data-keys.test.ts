import { Match } from 'aws-cdk-lib/assertions';
import { customTemplate, logicalId, resourcesOfType, stageTemplate } from './helpers';

describe('table', () => {
  test('single table: pk/sk strings, TTL on expiresAt, PITR, customer-managed encryption, on demand', () => {
    const { template } = stageTemplate('dev');
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: Match.arrayWith([
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'userId', AttributeType: 'S' },
      ]),
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: Match.anyValue() },
    });
  });

  test('one GSI byUserId on userId, KEYS_ONLY', () => {
    const { template } = stageTemplate('dev');
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      GlobalSecondaryIndexes: [
        { IndexName: 'byUserId', KeySchema: [{ AttributeName: 'userId', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } },
      ],
    });
  });

  test('prod: deletion protection and RETAIN; dev: neither', () => {
    stageTemplate('prod').template.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({ DeletionProtectionEnabled: true }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    stageTemplate('dev').template.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({ DeletionProtectionEnabled: false }),
      DeletionPolicy: 'Delete',
    });
  });

  test('provisioned billing is selectable and auto scales table and index', () => {
    const template = customTemplate('dev', (s) => ({
      ...s,
      table: {
        ...s.table,
        billing: { mode: 'PROVISIONED', read: { min: 2, max: 20, targetUtilizationPercent: 70 }, write: { min: 1, max: 10, targetUtilizationPercent: 70 } },
      },
    }));
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: Match.absent(),
      ProvisionedThroughput: { ReadCapacityUnits: 2, WriteCapacityUnits: 1 },
    });
    template.resourceCountIs('AWS::ApplicationAutoScaling::ScalableTarget', 4);
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ScalableDimension: 'dynamodb:index:ReadCapacityUnits',
      MinCapacity: 2,
      MaxCapacity: 20,
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({ TargetValue: 70 }),
    });
  });

  test('AWS-managed encryption is selectable', () => {
    const template = customTemplate('dev', (s) => ({ ...s, table: { ...s.table, encryption: 'AWS_MANAGED' } }));
    // SSEEnabled without a key id: the account's aws/dynamodb key.
    template.hasResourceProperties('AWS::DynamoDB::Table', { SSESpecification: { SSEEnabled: true, KMSMasterKeyId: Match.absent() } });
  });
});

describe('signing keys', () => {
  test('customer-managed key with rotation, use limited to Secrets Manager in this account', () => {
    const { template } = stageTemplate('dev');
    const keyId = logicalId(template, 'AWS::KMS::Key', 'KeysKey');
    const key = resourcesOfType(template, 'AWS::KMS::Key')[keyId];
    expect(key.Properties!.EnableKeyRotation).toBe(true);
    const statements = key.Properties!.KeyPolicy.Statement as any[];
    const use = statements.find((s) => s.Sid === 'UseOnlyThroughSecretsManagerInThisAccount');
    expect(use.Action).toEqual(expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey*']));
    expect(use.Condition.StringEquals['kms:ViaService']).toEqual({ 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']] });
    expect(use.Condition.StringEquals['kms:CallerAccount']).toEqual({ Ref: 'AWS::AccountId' });
    // No statement grants cryptographic use without the conditions (no kms:* for the account).
    for (const s of statements) {
      const actions = ([] as string[]).concat(s.Action);
      expect(actions).not.toContain('kms:*');
      if (actions.some((a) => /Decrypt|Encrypt|GenerateDataKey/.test(a))) {
        expect(s.Condition).toBeDefined();
      }
    }
  });

  test('the secret is encrypted with that key and holds no value in the template', () => {
    const { template } = stageTemplate('dev');
    const keyId = logicalId(template, 'AWS::KMS::Key', 'KeysKey');
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      KmsKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] },
      GenerateSecretString: Match.objectLike({ PasswordLength: 32 }),
      SecretString: Match.absent(),
    });
  });

  test('rotation every 30 days by rotate-keys, rotating once when created', () => {
    const { template } = stageTemplate('dev');
    const fnId = logicalId(template, 'AWS::Lambda::Function', 'FunctionsRotateKeysFunction');
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationLambdaARN: { 'Fn::GetAtt': [fnId, 'Arn'] },
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
      RotateImmediatelyOnUpdate: true,
    });
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysSecret');
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Principal: 'secretsmanager.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [fnId, 'Arn'] },
      SourceArn: { Ref: secretId },
      SourceAccount: { Ref: 'AWS::AccountId' },
    });
  });

  test('the schedule waits for the rotation permissions', () => {
    const { template } = stageTemplate('dev');
    const schedule = Object.values(resourcesOfType(template, 'AWS::SecretsManager::RotationSchedule'))[0];
    const deps = ([] as string[]).concat(schedule.DependsOn ?? []);
    expect(deps.some((d) => d.startsWith('KeysRotationPolicy'))).toBe(true);
    expect(deps.some((d) => d.startsWith('KeysSecretsManagerInvoke'))).toBe(true);
  });

  test('prod retains key and secret; dev does not', () => {
    stageTemplate('prod').template.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Retain' });
    stageTemplate('dev').template.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Delete' });
  });
});
