import { Match, Template } from 'aws-cdk-lib/assertions';
import { FUNCTION_NAMES, FunctionName, stageSettings } from '../../cdk/config';
import { FUNCTION_SPECS } from '../../cdk/lib/catalog';
import { FUNCTION_BINARY } from '../../cdk/lib/functions/rust-function';
import { customTemplate, logicalId, resourcesOfType, stageTemplate } from './helpers';

const PASCAL: Record<FunctionName, string> = {
  register: 'Register',
  login: 'Login',
  refresh: 'Refresh',
  logout: 'Logout',
  'logout-all': 'LogoutAll',
  'change-password': 'ChangePassword',
  me: 'Me',
  'account-email': 'AccountEmail',
  'account-mfa': 'AccountMfa',
  'well-known': 'WellKnown',
  mailer: 'Mailer',
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

  test('twelve functions, one binary, all provided.al2023 on x86_64 with active tracing', () => {
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
    const publicId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysPublicKeySet');
    const tableId = logicalId(template, 'AWS::DynamoDB::Table', 'DataTable');
    const signs = ['login', 'refresh', 'change-password', 'account-mfa', 'rotate-keys'];
    // logout verifies the access tokens /oauth/revoke denies.
    const readsPublic = ['me', 'logout-all', 'logout', 'well-known', 'rotate-keys'];
    for (const name of FUNCTION_NAMES.filter((n) => n !== 'mailer')) {
      const env = fn(template, name).Environment.Variables;
      // A function is told the name of the key secrets it may read, and only those.
      expect(env.KEYGATE_KEYS_SECRET_ID).toEqual(signs.includes(name) ? { Ref: secretId } : undefined);
      expect(env.KEYGATE_PUBLIC_KEYS_SECRET_ID).toEqual(readsPublic.includes(name) ? { Ref: publicId } : undefined);
      expect(env.KEYGATE_AUDIENCE).toBe('keygate');
      expect(env.KEYGATE_ACCESS_TOKEN_TTL_SECONDS).toBe('900');
      expect(env.KEYGATE_REFRESH_FAMILY_TTL_SECONDS).toBe('2592000');
      expect(env.KEYGATE_REFRESH_REUSE_GRACE_SECONDS).toBe('10');
      expect(env.KEYGATE_SIGNING_ALG).toBe('ES256');
      expect(env.KEYGATE_PASSWORD_MIN_LENGTH).toBe('15');
      expect(env.KEYGATE_PASSWORD_MAX_LENGTH).toBe('128');
      expect(env.KEYGATE_PASSWORD_REQUIRE_CLASSES).toBe('');
      expect(env.KEYGATE_KEY_CACHE_TTL_SECONDS).toBe('300');
      expect(env.KEYGATE_MFA_ISSUER).toBe('keygate');
      expect(env.KEYGATE_MFA_RECENT_AUTH_SECONDS).toBe('300');
      expect(env.KEYGATE_METRICS_NAMESPACE).toBe('Keygate/dev');
      expect(env.RUST_LOG).toBeDefined();
      // The one binary runs the function this names (keygate_lambda::shell::run_function_from_env).
      expect(env.KEYGATE_FUNCTION).toBe(name);
      if (name === 'well-known' || name === 'rotate-keys') {
        expect(env.KEYGATE_TABLE_NAME).toBeUndefined();
      } else {
        expect(env.KEYGATE_TABLE_NAME).toEqual({ Ref: tableId });
      }
      // The account rules of mail reach every API function (login refuses unverified accounts,
      // register mails the owner of a taken address), and the sender none of them.
      const api = FUNCTION_SPECS[name].routes.length > 0;
      expect(env.KEYGATE_APP_URL).toBe(api ? 'https://dev.app.example.com' : undefined);
      expect(env.KEYGATE_REQUIRE_VERIFIED_EMAIL).toBe(api ? 'true' : undefined);
      expect(env.KEYGATE_EMAIL_VERIFICATION_TTL_SECONDS).toBe(api ? '86400' : undefined);
      expect(env.KEYGATE_PASSWORD_RESET_TTL_SECONDS).toBe(api ? '900' : undefined);
      expect(env.KEYGATE_EMAIL_COOLDOWN_SECONDS).toBe(api ? '60' : undefined);
      expect(env.KEYGATE_EMAIL_HOURLY_CAP).toBe(api ? '5' : undefined);
      expect(env.KEYGATE_MAIL_FROM).toBeUndefined();
      expect(env.KEYGATE_SES_CONFIGURATION_SET).toBeUndefined();
    }
  });

  test('the mailer is told its table, server key, sender, configuration set and namespace, and nothing of the token policy', () => {
    const tableId = logicalId(template, 'AWS::DynamoDB::Table', 'DataTable');
    const serverKeyId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysServerKey');
    const setId = logicalId(template, 'AWS::SES::ConfigurationSet', 'MailConfigurationSet');
    expect(fn(template, 'mailer').Environment.Variables).toEqual({
      KEYGATE_FUNCTION: 'mailer',
      KEYGATE_TABLE_NAME: { Ref: tableId },
      KEYGATE_SERVER_KEY_SECRET_ID: { Ref: serverKeyId },
      KEYGATE_METRICS_NAMESPACE: 'Keygate/dev',
      KEYGATE_MAIL_FROM: 'keygate <no-reply@dev.auth.example.com>',
      KEYGATE_SES_CONFIGURATION_SET: { Ref: setId },
      RUST_LOG: dev.functions.logLevel,
    });
    expect(fn(template, 'mailer').Timeout).toBe(dev.functions.mailerTimeoutSeconds);
    expect(fn(template, 'account-email').Timeout).toBe(dev.functions.timeoutSeconds);
    expect(fn(template, 'account-email').MemorySize).toBe(1024);
    expect(fn(template, 'mailer').MemorySize).toBe(256);
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
      // TransactWriteItems: the user with its email lock, or the notice to the owner of a taken address.
      register: { table: ['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], index: [] },
      login: { table: ['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], index: [] },
      refresh: {
        table: ['dynamodb:BatchWriteItem', 'dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
        index: [],
      },
      // PutItem: the deny-list entry of an access token revoked through /oauth/revoke.
      logout: { table: ['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'], index: [] },
      'logout-all': { table: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], index: ['dynamodb:Query'] },
      'change-password': {
        table: ['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        index: ['dynamodb:Query'],
      },
      me: { table: ['dynamodb:GetItem'], index: ['dynamodb:Query'] },
      'account-email': { table: ['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], index: [] },
      // The user's MFA state swapped conditionally (TransactWriteItems), the login-step challenge updated.
      'account-mfa': { table: ['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], index: ['dynamodb:Query'] },
      // The mailer removes what it sent; it reads the outbox from the stream, not the table.
      mailer: { table: ['dynamodb:DeleteItem'], index: [] },
    };
    const stmts = statements(template, name);
    expect(actionsOn(stmts, isTable(tableId))).toEqual(expected[name].table);
    expect(actionsOn(stmts, isIndex(tableId))).toEqual(expected[name].index);
    // No statement reaches DynamoDB on anything but this table and its index (the mailer: and its stream).
    const isStream = (r: any) => name === 'mailer' && JSON.stringify(r) === JSON.stringify({ 'Fn::GetAtt': [tableId, 'StreamArn'] });
    for (const s of stmts) {
      if (([] as string[]).concat(s.Action).some((a) => a.startsWith('dynamodb:'))) {
        expect(([] as any[]).concat(s.Resource).every((r) => isTable(tableId)(r) || isIndex(tableId)(r) || isStream(r))).toBe(true);
      }
    }
  });

  test.each(['well-known', 'rotate-keys'] as FunctionName[])('%s: no table access at all', (name) => {
    const stmts = statements(template, name);
    expect(stmts.flatMap((s) => ([] as string[]).concat(s.Action)).filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
  });

  describe('key secrets: private keys only where tokens are signed', () => {
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysSecret');
    const publicId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysPublicKeySet');
    const keyId = logicalId(template, 'AWS::KMS::Key', 'KeysKey');
    const viaSecretsManager = { 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']] };
    const serverKeyId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysServerKey');
    // The server key's and the factor-key ring's two statements each are checked on their own below
    // (and by `referencesFactorKeys`, whatever their Sid).
    const isServerKey = (s: { Sid?: string }) => s.Sid === 'ReadServerKey' || s.Sid === 'DecryptServerKeyViaSecretsManager';
    const isFactorKeys = (s: { Sid?: string }) => s.Sid === 'ReadFactorKeys' || s.Sid === 'DecryptFactorKeysViaSecretsManager';
    // The init's batch read: its own test below.
    const isOwnTest = (s: { Sid?: string }) => isServerKey(s) || isFactorKeys(s) || s.Sid === 'ReadSecretsAtInit';
    const secretStatements = (name: FunctionName) =>
      statements(template, name).filter((s) => !isOwnTest(s) && ([] as string[]).concat(s.Action).some((a) => a.startsWith('secretsmanager:')));
    const keyStatements = (name: FunctionName) =>
      statements(template, name).filter((s) => !isOwnTest(s) && JSON.stringify(s.Resource) === JSON.stringify({ 'Fn::GetAtt': [keyId, 'Arn'] }));
    /** The secrets `name` may call GetSecretValue on. */
    const readable = (name: FunctionName) =>
      secretStatements(name)
        .filter((s) => ([] as string[]).concat(s.Action).includes('secretsmanager:GetSecretValue'))
        .flatMap((s) => ([] as any[]).concat(s.Resource).map((r) => r.Ref));

    test('only login, refresh, change-password, account-mfa and rotate-keys can read the signing secret', () => {
      const readers = FUNCTION_NAMES.filter((n) => readable(n).includes(secretId));
      expect([...readers].sort()).toEqual(['account-mfa', 'change-password', 'login', 'refresh', 'rotate-keys']);
    });

    test.each(['login', 'refresh', 'change-password', 'account-mfa'] as FunctionName[])('%s: GetSecretValue on the signing secret only, Decrypt only for it via Secrets Manager', (name) => {
      expect(secretStatements(name)).toEqual([{ Sid: 'ReadSigningKeys', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: secretId } }]);
      expect(keyStatements(name)).toEqual([
        {
          Sid: 'DecryptSigningKeysViaSecretsManager',
          Effect: 'Allow',
          Action: 'kms:Decrypt',
          Resource: { 'Fn::GetAtt': [keyId, 'Arn'] },
          Condition: { StringEquals: { 'kms:ViaService': viaSecretsManager, 'kms:EncryptionContext:SecretARN': { Ref: secretId } } },
        },
      ]);
    });

    test.each(['me', 'logout-all', 'logout', 'well-known'] as FunctionName[])('%s: reads only the public key set, Decrypt only for it', (name) => {
      expect(secretStatements(name)).toEqual([{ Sid: 'ReadPublicKeys', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: publicId } }]);
      expect(keyStatements(name)).toEqual([
        {
          Sid: 'DecryptPublicKeysViaSecretsManager',
          Effect: 'Allow',
          Action: 'kms:Decrypt',
          Resource: { 'Fn::GetAtt': [keyId, 'Arn'] },
          Condition: { StringEquals: { 'kms:ViaService': viaSecretsManager, 'kms:EncryptionContext:SecretARN': { Ref: publicId } } },
        },
      ]);
    });

    test.each(['register'] as FunctionName[])('%s: no key secret and no use of the signing CMK at all', (name) => {
      expect(secretStatements(name)).toEqual([]);
      expect(keyStatements(name)).toEqual([]);
    });

    test('the grants follow the catalog field (one fact): every function with keys "public" reads the public set alone', () => {
      for (const name of FUNCTION_NAMES) {
        const expected = { private: [secretId], public: [publicId], none: [], rotate: [secretId, publicId] }[FUNCTION_SPECS[name].keys];
        expect([...readable(name)].sort()).toEqual([...expected].sort());
      }
    });

    test('with HS256 (explicit opt-in: a shared key has no public form) the verifiers read the signing secret instead', () => {
      const hs256 = customTemplate('dev', (s) => ({ ...s, auth: { ...s.auth, signingAlg: 'HS256' } }));
      const signing = logicalId(hs256, 'AWS::SecretsManager::Secret', 'KeysSecret');
      for (const name of ['me', 'logout-all', 'logout', 'well-known'] as FunctionName[]) {
        const env = fn(hs256, name).Environment.Variables;
        expect(env.KEYGATE_KEYS_SECRET_ID).toEqual({ Ref: signing });
        expect(env.KEYGATE_PUBLIC_KEYS_SECRET_ID).toBeUndefined();
        const reads = statements(hs256, name)
          .filter((s) => s.Sid === 'ReadSigningKeys' || s.Sid === 'ReadPublicKeys')
          .map((s) => s.Sid);
        expect(reads).toEqual(['ReadSigningKeys']);
      }
      for (const name of ['register'] as FunctionName[]) {
        expect(fn(hs256, name).Environment.Variables.KEYGATE_KEYS_SECRET_ID).toBeUndefined();
      }
    });

    describe('the TOTP data-key ring', () => {
      const factorKeysId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysFactorKeys');
      const factorReaders = FUNCTION_NAMES.filter((n) => FUNCTION_SPECS[n].factorKeys);
      /** Whether `node` (a statement, a policy document, an environment) names the ring's ARN anywhere. */
      const referencesFactorKeysIn = (node: unknown): boolean => JSON.stringify(node ?? null).includes(JSON.stringify({ Ref: factorKeysId }));
      /** Whether any statement of the role names the ring's ARN, in any position (resource or condition). */
      const referencesFactorKeys = (name: FunctionName) => statements(template, name).some(referencesFactorKeysIn);

      test('its own secret, encrypted with the CMK, generated by Secrets Manager from the ring template', () => {
        const secret = resourcesOfType(template, 'AWS::SecretsManager::Secret')[factorKeysId].Properties!;
        expect(secret.KmsKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
        expect(secret.SecretString).toBeUndefined();
        expect(secret.GenerateSecretString).toMatchObject({ GenerateStringKey: 'k1', PasswordLength: 64, ExcludePunctuation: true });
        // FactorKeyRing::parse: `current` names a key; each key's material is at least 32 characters.
        expect(JSON.parse(secret.GenerateSecretString.SecretStringTemplate)).toEqual({ current: 'k1' });
        expect(secret.GenerateSecretString.PasswordLength).toBeGreaterThanOrEqual(32);
        expect(secret.GenerateSecretString.ExcludeCharacters).toBeUndefined();
      });

      test('no rotation schedule: a rotation adds a key, it does not replace the ring', () => {
        for (const schedule of Object.values(resourcesOfType(template, 'AWS::SecretsManager::RotationSchedule'))) {
          expect(schedule.Properties!.SecretId).not.toEqual({ Ref: factorKeysId });
        }
      });

      test('prod retains it; dev does not', () => {
        const prod = stageTemplate('prod').template;
        expect(resourcesOfType(prod, 'AWS::SecretsManager::Secret')[logicalId(prod, 'AWS::SecretsManager::Secret', 'KeysFactorKeys')]).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
        expect(resourcesOfType(template, 'AWS::SecretsManager::Secret')[factorKeysId]).toMatchObject({ DeletionPolicy: 'Delete' });
      });

      test('the contract flags account-mfa alone', () => {
        expect(factorReaders).toEqual(['account-mfa']);
      });

      test.each(FUNCTION_NAMES)('%s: reads the ring and is told its name exactly when its contract entry has factor_keys', (name) => {
        const variable = fn(template, name).Environment.Variables.KEYGATE_FACTOR_KEYS_SECRET_ID;
        if (FUNCTION_SPECS[name].factorKeys) {
          expect(variable).toEqual({ Ref: factorKeysId });
          expect(statements(template, name).filter(referencesFactorKeysIn)).toEqual([
            { Sid: 'ReadFactorKeys', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: factorKeysId } },
            {
              Sid: 'DecryptFactorKeysViaSecretsManager',
              Effect: 'Allow',
              Action: 'kms:Decrypt',
              Resource: { 'Fn::GetAtt': [keyId, 'Arn'] },
              Condition: { StringEquals: { 'kms:ViaService': viaSecretsManager, 'kms:EncryptionContext:SecretARN': { Ref: factorKeysId } } },
            },
          ]);
        } else {
          expect(variable).toBeUndefined();
          expect(referencesFactorKeys(name)).toBe(false);
          expect(statements(template, name).filter(isFactorKeys)).toEqual([]);
        }
      });

      test('no other role or resource policy in the stack names the ring', () => {
        const roleIds = new Set(FUNCTION_NAMES.filter((n) => FUNCTION_SPECS[n].factorKeys).map((n) => logicalId(template, 'AWS::IAM::Role', `Functions${PASCAL[n]}Role`)));
        for (const [id, policy] of Object.entries(resourcesOfType(template, 'AWS::IAM::Policy'))) {
          if (referencesFactorKeysIn(policy.Properties!.PolicyDocument)) {
            expect([id, (policy.Properties!.Roles as any[]).map((r) => r.Ref)]).toEqual([id, [...roleIds]]);
          }
        }
        for (const [id, r] of Object.entries(resourcesOfType(template, 'AWS::IAM::Role'))) {
          expect([id, referencesFactorKeysIn(r.Properties)]).toEqual([id, false]);
        }
        // Only the function flagged by the contract is told the ring's name.
        const told = Object.values(resourcesOfType(template, 'AWS::Lambda::Function'))
          .filter((f) => referencesFactorKeysIn(f.Properties!.Environment))
          .map((f) => f.Properties!.Environment.Variables.KEYGATE_FUNCTION);
        expect(told).toEqual(factorReaders);
      });

      test('with the HTTP API kind too', () => {
        const http = customTemplate('dev', (s) => ({ ...s, api: { ...s.api, kind: 'http' } }));
        const ringId = logicalId(http, 'AWS::SecretsManager::Secret', 'KeysFactorKeys');
        const ref = JSON.stringify({ Ref: ringId });
        const told = Object.values(resourcesOfType(http, 'AWS::Lambda::Function'))
          .filter((f) => JSON.stringify(f.Properties!.Environment).includes(ref))
          .map((f) => f.Properties!.Environment.Variables.KEYGATE_FUNCTION);
        expect(told).toEqual(factorReaders);
        const mfaRole = logicalId(http, 'AWS::IAM::Role', 'FunctionsAccountMfaRole');
        for (const policy of Object.values(resourcesOfType(http, 'AWS::IAM::Policy'))) {
          if (JSON.stringify(policy.Properties!.PolicyDocument).includes(ref)) {
            expect((policy.Properties!.Roles as any[]).map((r) => r.Ref)).toEqual([mfaRole]);
          }
        }
      });
    });

    test('the public key set is its own secret under the same CMK, starting as a placeholder', () => {
      const secret = resourcesOfType(template, 'AWS::SecretsManager::Secret')[publicId].Properties!;
      expect(secret.KmsKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
      expect(secret.SecretString).toBeUndefined();
      expect(secret.GenerateSecretString.PasswordLength).toBe(32);
    });

    test.each(FUNCTION_NAMES)('%s: reads the server key (audit email hashes) exactly when it has table access', (name) => {
      const granted = statements(template, name).filter(isServerKey);
      const variable = fn(template, name).Environment.Variables.KEYGATE_SERVER_KEY_SECRET_ID;
      if (FUNCTION_SPECS[name].tableAccess) {
        expect(variable).toEqual({ Ref: serverKeyId });
        expect(granted).toEqual([
          { Sid: 'ReadServerKey', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: serverKeyId } },
          {
            Sid: 'DecryptServerKeyViaSecretsManager',
            Effect: 'Allow',
            Action: 'kms:Decrypt',
            Resource: { 'Fn::GetAtt': [keyId, 'Arn'] },
            Condition: { StringEquals: { 'kms:ViaService': viaSecretsManager, 'kms:EncryptionContext:SecretARN': { Ref: serverKeyId } } },
          },
        ]);
      } else {
        expect(variable).toBeUndefined();
        expect(granted).toEqual([]);
      }
    });
  });

  test('rotate-keys: the four rotation actions on the one secret, the CMK only via Secrets Manager', () => {
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysSecret');
    const keyId = logicalId(template, 'AWS::KMS::Key', 'KeysKey');
    const stmts = statements(template, 'rotate-keys');
    const publicId = logicalId(template, 'AWS::SecretsManager::Secret', 'KeysPublicKeySet');
    const sm = stmts.filter((s) => ([] as string[]).concat(s.Action).some((a) => a.startsWith('secretsmanager:')));
    expect(sm).toHaveLength(2);
    const onSigning = sm.find((s) => JSON.stringify(s.Resource) === JSON.stringify({ Ref: secretId }));
    expect([...onSigning.Action].sort()).toEqual([
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
      'secretsmanager:PutSecretValue',
      'secretsmanager:UpdateSecretVersionStage',
    ]);
    // The public key set: written (and read, to skip unchanged writes), never rotated or relabelled.
    const onPublic = sm.find((s) => JSON.stringify(s.Resource) === JSON.stringify({ Ref: publicId }));
    expect([...onPublic.Action].sort()).toEqual(['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue']);
    const kms = stmts.find((s) => JSON.stringify(s.Resource) === JSON.stringify({ 'Fn::GetAtt': [keyId, 'Arn'] }));
    expect(kms.Condition.StringEquals['kms:ViaService']).toBeDefined();
    expect(kms.Condition.StringEquals['kms:EncryptionContext:SecretARN']).toEqual([{ Ref: secretId }, { Ref: publicId }]);
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
      // BatchGetSecretValue has no resource type: every function that reads secrets at init (all but
      // rotate-keys) reads them in one call; each secret still needs GetSecretValue on its own ARN.
      const batch = name === 'rotate-keys' ? [] : [{ Sid: 'ReadSecretsAtInit', Effect: 'Allow', Action: 'secretsmanager:BatchGetSecretValue', Resource: '*' }];
      expect(wildcard).toEqual([{ Effect: 'Allow', Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'], Resource: '*' }, ...batch]);
    }
  });

  test('table key use by the functions goes through DynamoDB only', () => {
    const dataKey = logicalId(template, 'AWS::KMS::Key', 'DataKey');
    for (const name of FUNCTION_NAMES.filter((n) => FUNCTION_SPECS[n].tableAccess)) {
      const s = statements(template, name).find((x) => JSON.stringify(x.Resource) === JSON.stringify({ 'Fn::GetAtt': [dataKey, 'Arn'] }));
      expect(s.Condition).toEqual({ StringEquals: { 'kms:ViaService': { 'Fn::Join': ['', ['dynamodb.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } } });
    }
  });

  test('every function is built from the contract\'s one binary', () => {
    expect(FUNCTION_BINARY).toBe('keygate-functions');
  });

  test('functions are packaged from the workspace through cargo-lambda (asset code, bootstrap handler)', () => {
    template.allResourcesProperties('AWS::Lambda::Function', { Code: { S3Bucket: Match.anyValue(), S3Key: Match.stringLikeRegexp('\\.zip$') } });
  });
});
