import { Match, Template } from 'aws-cdk-lib/assertions';
import { FUNCTION_NAMES, FunctionName, stageSettings } from '../../cdk/config';
import { FUNCTION_SPECS } from '../../cdk/lib/catalog';
import { packageName } from '../../cdk/lib/functions/rust-function';
import { logicalId, resourcesOfType, stageTemplate } from './helpers';

const PASCAL: Record<FunctionName, string> = {
  register: 'Register',
  login: 'Login',
  refresh: 'Refresh',
  logout: 'Logout',
  'logout-all': 'LogoutAll',
  'change-password': 'ChangePassword',
  me: 'Me',
  'well-known': 'WellKnown',
  'rotate-keys': 'RotateKeys',
};

function fnId(template: Template, name: FunctionName): string {
  return logicalId(template, 'AWS::Lambda::Function', `Functions${PASCAL[name]}Function`);
}

function fn(template: Template, name: FunctionName): Record<string, any> {
  return resourcesOfType(template, 'AWS::Lambda::Function')[fnId(template, name)].Properties!;
}

/** All statements of the policies attached to a function's role. */
function statements(template: Template, name: FunctionName): any[] {
  const roleId = logicalId(template, 'AWS::IAM::Role', `Functions${PASCAL[name]}Role`);
  const out: any[] = [];
  for (const policy of Object.values(resourcesOfType(template, 'AWS::IAM::Policy'))) {
    if ((policy.Properties!.Roles as any[]).some((r) => r.Ref === roleId)) {
      out.push(...policy.Properties!.PolicyDocument.Statement);
    }
  }
  const role = resourcesOfType(template, 'AWS::IAM::Role')[roleId].Properties!;
  expect(role.ManagedPolicyArns).toBeUndefined();
  expect(role.Policies).toBeUndefined();
  return out;
}

function actionsOn(stmts: any[], predicate: (resource: any) => boolean): string[] {
  return stmts
    .filter((s) => ([] as any[]).concat(s.Resource).some(predicate))
    .flatMap((s) => ([] as string[]).concat(s.Action))
    .sort();
}

const isTable = (tableId: string) => (r: any) => JSON.stringify(r) === JSON.stringify({ 'Fn::GetAtt': [tableId, 'Arn'] });
const isIndex = (tableId: string) => (r: any) => JSON.stringify(r) === JSON.stringify({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [tableId, 'Arn'] }, '/index/byUserId']] });

describe('functions', () => {
  const { template } = stageTemplate('dev');
  const dev = stageSettings('dev');

  test('nine functions, one per binary, all provided.al2023 on x86_64 with active tracing', () => {
    template.resourceCountIs('AWS::Lambda::Function', FUNCTION_NAMES.length);
    for (const name of FUNCTION_NAMES) {
      const p = fn(template, name);
      expect(p.Runtime).toBe('provided.al2023');
      expect(p.Handler).toBe('bootstrap');
      expect(p.Architectures).toEqual(['x86_64']);
      expect(p.TracingConfig).toEqual({ Mode: 'Active' });
      expect(p.MemorySize).toBe(dev.functions.memoryMb[name]);
    }
  });

  test('each function logs to its own log group with the stage retention', () => {
    const groups = resourcesOfType(template, 'AWS::Logs::LogGroup');
    for (const name of FUNCTION_NAMES) {
      const groupRef = fn(template, name).LoggingConfig.LogGroup.Ref as string;
      expect(groups[groupRef].Properties!.RetentionInDays).toBe(30);
    }
    const prod = stageTemplate('prod').template;
    const prodGroups = resourcesOfType(prod, 'AWS::Logs::LogGroup');
    const prodLogin = resourcesOfType(prod, 'AWS::Lambda::Function')[logicalId(prod, 'AWS::Lambda::Function', 'FunctionsLoginFunction')];
    expect(prodGroups[prodLogin.Properties!.LoggingConfig.LogGroup.Ref].Properties!.RetentionInDays).toBe(90);
    expect(prodGroups[prodLogin.Properties!.LoggingConfig.LogGroup.Ref].DeletionPolicy).toBe('Retain');
  });

  test('environment follows the contract', () => {
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysSecret');
    const tableId = logicalId(template, 'AWS::DynamoDB::Table', 'DataTable');
    for (const name of FUNCTION_NAMES) {
      const env = fn(template, name).Environment.Variables;
      expect(env.KEYGATE_KEYS_SECRET_ID).toEqual({ Ref: secretId });
      expect(env.KEYGATE_AUDIENCE).toBe('keygate');
      expect(env.KEYGATE_ACCESS_TOKEN_TTL_SECONDS).toBe('900');
      expect(env.KEYGATE_REFRESH_FAMILY_TTL_SECONDS).toBe('2592000');
      expect(env.KEYGATE_REFRESH_REUSE_GRACE_SECONDS).toBe('10');
      expect(env.KEYGATE_SIGNING_ALG).toBe('ES256');
      expect(env.KEYGATE_PASSWORD_MIN_LENGTH).toBe('15');
      expect(env.KEYGATE_PASSWORD_MAX_LENGTH).toBe('128');
      expect(env.KEYGATE_PASSWORD_REQUIRE_CLASSES).toBe('');
      expect(env.KEYGATE_KEY_CACHE_TTL_SECONDS).toBe('300');
      expect(env.KEYGATE_METRICS_NAMESPACE).toBe('Keygate/dev');
      expect(env.RUST_LOG).toBeDefined();
      if (name === 'well-known' || name === 'rotate-keys') {
        expect(env.KEYGATE_TABLE_NAME).toBeUndefined();
      } else {
        expect(env.KEYGATE_TABLE_NAME).toEqual({ Ref: tableId });
      }
    }
  });

  test('the issuer is the API base URL built from the API id, region and stage (no cycle)', () => {
    const apiId = logicalId(template, 'AWS::ApiGateway::RestApi', '');
    expect(fn(template, 'login').Environment.Variables.KEYGATE_ISSUER).toEqual({
      'Fn::Join': ['', ['https://', { Ref: apiId }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }, '/dev']],
    });
  });

  test.each(FUNCTION_NAMES.filter((n) => FUNCTION_SPECS[n].tableAccess))('%s: exactly the table actions of the contract', (name) => {
    const tableId = logicalId(template, 'AWS::DynamoDB::Table', 'DataTable');
    const expected: Record<string, { table: string[]; index: string[] }> = {
      register: { table: ['dynamodb:PutItem'], index: [] },
      login: { table: ['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], index: [] },
      refresh: {
        table: ['dynamodb:BatchWriteItem', 'dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
        index: [],
      },
      logout: { table: ['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:Query'], index: [] },
      'logout-all': { table: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], index: ['dynamodb:Query'] },
      'change-password': {
        table: ['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        index: ['dynamodb:Query'],
      },
      me: { table: ['dynamodb:GetItem'], index: ['dynamodb:Query'] },
    };
    const stmts = statements(template, name);
    expect(actionsOn(stmts, isTable(tableId))).toEqual(expected[name].table);
    expect(actionsOn(stmts, isIndex(tableId))).toEqual(expected[name].index);
    // No statement reaches DynamoDB on anything but this table and its index.
    for (const s of stmts) {
      if (([] as string[]).concat(s.Action).some((a) => a.startsWith('dynamodb:'))) {
        expect(([] as any[]).concat(s.Resource).every((r) => isTable(tableId)(r) || isIndex(tableId)(r))).toBe(true);
      }
    }
  });

  test.each(['well-known', 'rotate-keys'] as FunctionName[])('%s: no table access at all', (name) => {
    const stmts = statements(template, name);
    expect(stmts.flatMap((s) => ([] as string[]).concat(s.Action)).filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
  });

  test.each(FUNCTION_NAMES.filter((n) => n !== 'rotate-keys'))('%s: GetSecretValue on the one secret, Decrypt only via Secrets Manager', (name) => {
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysSecret');
    const keyId = logicalId(template, 'AWS::KMS::Key', 'KeysKey');
    const stmts = statements(template, name);
    const secretStmts = stmts.filter((s) => ([] as string[]).concat(s.Action).some((a) => a.startsWith('secretsmanager:')));
    const serverKeyId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysServerKey');
    const expected = [{ Sid: 'ReadSigningKeys', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: secretId } }];
    // The audit emitters (the functions with table access) also read the server key, and only they.
    if (FUNCTION_SPECS[name].tableAccess) {
      expected.push({ Sid: 'ReadServerKey', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: serverKeyId } });
      expect(fn(template, name).Environment.Variables.KEYGATE_SERVER_KEY_SECRET_ID).toEqual({ Ref: serverKeyId });
    } else {
      expect(fn(template, name).Environment.Variables.KEYGATE_SERVER_KEY_SECRET_ID).toBeUndefined();
    }
    const bySid = (x: { Sid: string }, y: { Sid: string }) => x.Sid.localeCompare(y.Sid);
    expect([...secretStmts].sort(bySid)).toEqual(expected.sort(bySid));
    const keyStmt = stmts.find((s) => JSON.stringify(s.Resource) === JSON.stringify({ 'Fn::GetAtt': [keyId, 'Arn'] }));
    expect(keyStmt.Action).toBe('kms:Decrypt');
    expect(keyStmt.Condition.StringEquals['kms:ViaService']).toEqual({ 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']] });
  });

  test('rotate-keys: the four rotation actions on the one secret, the CMK only via Secrets Manager', () => {
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysSecret');
    const keyId = logicalId(template, 'AWS::KMS::Key', 'KeysKey');
    const stmts = statements(template, 'rotate-keys');
    const sm = stmts.filter((s) => ([] as string[]).concat(s.Action).some((a) => a.startsWith('secretsmanager:')));
    expect(sm).toHaveLength(1);
    expect([...sm[0].Action].sort()).toEqual([
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
      'secretsmanager:PutSecretValue',
      'secretsmanager:UpdateSecretVersionStage',
    ]);
    expect(sm[0].Resource).toEqual({ Ref: secretId });
    const kms = stmts.find((s) => JSON.stringify(s.Resource) === JSON.stringify({ 'Fn::GetAtt': [keyId, 'Arn'] }));
    expect(kms.Condition.StringEquals['kms:ViaService']).toBeDefined();
  });

  test('every role: only its own log group, X-Ray, and nothing else with a wildcard resource', () => {
    for (const name of FUNCTION_NAMES) {
      const groupRef = fn(template, name).LoggingConfig.LogGroup.Ref as string;
      const stmts = statements(template, name);
      const logs = stmts.filter((s) => ([] as string[]).concat(s.Action).some((a) => a.startsWith('logs:')));
      expect(logs).toEqual([
        { Sid: 'WriteOwnLogs', Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': [groupRef, 'Arn'] } },
      ]);
      const wildcard = stmts.filter((s) => s.Resource === '*');
      expect(wildcard).toEqual([{ Effect: 'Allow', Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'], Resource: '*' }]);
    }
  });

  test('table key use by the functions goes through DynamoDB only', () => {
    const dataKey = logicalId(template, 'AWS::KMS::Key', 'DataKey');
    for (const name of FUNCTION_NAMES.filter((n) => FUNCTION_SPECS[n].tableAccess)) {
      const s = statements(template, name).find((x) => JSON.stringify(x.Resource) === JSON.stringify({ 'Fn::GetAtt': [dataKey, 'Arn'] }));
      expect(s.Condition).toEqual({ StringEquals: { 'kms:ViaService': { 'Fn::Join': ['', ['dynamodb.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } } });
    }
  });

  test('each function is built from its contract package', () => {
    expect(packageName('logout-all')).toBe('keygate-fn-logout-all');
  });

  test('functions are packaged from the workspace through cargo-lambda (asset code, bootstrap handler)', () => {
    template.allResourcesProperties('AWS::Lambda::Function', { Code: { S3Bucket: Match.anyValue(), S3Key: Match.stringLikeRegexp('\\.zip$') } });
  });
});
