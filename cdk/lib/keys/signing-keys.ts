import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { StageSettings } from '../../config';
import { KeyAccess } from '../catalog';
import { acknowledgeFactorKeys, acknowledgePublicKeySecret, acknowledgeServerKey } from '../nag';

export interface SigningKeysProps {
  readonly settings: StageSettings;
}

/** The Secrets Manager endpoint principal string used in kms:ViaService conditions. */
export function secretsManagerViaService(): string {
  return `secretsmanager.${Aws.REGION}.amazonaws.com`;
}

/**
 * The signing-key set: a Secrets Manager secret encrypted with a customer-managed KMS key whose
 * key policy lets principals of this account use it only through Secrets Manager.
 *
 * The template holds no key material: the secret starts as a random placeholder string that no
 * function accepts as a key set (they answer 503), and the rotation schedule added by
 * `addRotation` runs rotate-keys once as soon as it is created, which writes the first real set.
 *
 * Beside it, the public key set (same CMK): rotate-keys writes the public JWKs and each key's
 * `not_before` there in createSecret (the pending key, before it can sign; for a deployment's first
 * key, before finishSecret makes it current) and finishSecret. Functions that only verify read that
 * secret and have no grant on the signing secret.
 *
 * Two more secrets under the same CMK: the server key (audit email hashes, mailed-code HMACs, the
 * outbox seal) and the TOTP data-key ring, which only the functions with `factor_keys` read.
 */
export class SigningKeys extends Construct {
  readonly key: kms.Key;
  readonly secret: secretsmanager.Secret;
  readonly publicSecret: secretsmanager.Secret;
  readonly serverKey: secretsmanager.Secret;
  readonly factorKeys: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: SigningKeysProps) {
    super(scope, id);
    const { settings } = props;
    const removalPolicy = settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.key = new kms.Key(this, 'Key', {
      description: `keygate ${settings.stageName}: encryption of the secrets (signing keys, public keys, server key, TOTP data keys)`,
      enableKeyRotation: true,
      removalPolicy,
      pendingWindow: Duration.days(settings.retainData ? 30 : 7),
    });
    // Replace CDK's default key policy (account root may do kms:*) with one that keeps key
    // administration with the account but allows cryptographic use only via Secrets Manager.
    const policy = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'KeyAdministrationByAccount',
          principals: [new iam.AccountRootPrincipal()],
          actions: [
            'kms:Create*',
            'kms:Describe*',
            'kms:Enable*',
            'kms:List*',
            'kms:Put*',
            'kms:Update*',
            'kms:Revoke*',
            'kms:Disable*',
            'kms:Get*',
            'kms:Delete*',
            'kms:TagResource',
            'kms:UntagResource',
            'kms:ScheduleKeyDeletion',
            'kms:CancelKeyDeletion',
          ],
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          sid: 'UseOnlyThroughSecretsManagerInThisAccount',
          principals: [new iam.AccountRootPrincipal()],
          actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
          resources: ['*'],
          conditions: {
            StringEquals: {
              'kms:ViaService': secretsManagerViaService(),
              'kms:CallerAccount': Aws.ACCOUNT_ID,
            },
          },
        }),
      ],
    });
    (this.key.node.defaultChild as kms.CfnKey).keyPolicy = policy;

    this.secret = new secretsmanager.Secret(this, 'Secret', {
      description: `keygate ${settings.stageName}: JWT signing-key set (written by the rotate-keys function)`,
      encryptionKey: this.key,
      // Not a key: a random string that is not a valid key set, so nothing secret is in the template.
      generateSecretString: { passwordLength: 32, excludePunctuation: true },
      removalPolicy,
    });

    this.publicSecret = new secretsmanager.Secret(this, 'PublicKeySet', {
      description: `keygate ${settings.stageName}: public keys of the JWT signing-key set (written by the rotate-keys function)`,
      encryptionKey: this.key,
      // Until the first rotation writes the public set: not a key set, so verifiers answer 503.
      generateSecretString: { passwordLength: 32, excludePunctuation: true },
      removalPolicy,
    });
    acknowledgePublicKeySecret(this.publicSecret);

    // The 256-bit server key (audit email hashes, mailed-code HMACs, the outbox seal), apart from
    // the signing keys so functions that only emit audit events or deliver mail never read those.
    // 64 lowercase hex digits.
    this.serverKey = new secretsmanager.Secret(this, 'ServerKey', {
      description: `keygate ${settings.stageName}: server key (audit email hashes, mailed-code HMACs, outbox seal)`,
      encryptionKey: this.key,
      generateSecretString: {
        passwordLength: 64,
        excludePunctuation: true,
        excludeUppercase: true,
        includeSpace: false,
        excludeCharacters: 'ghijklmnopqrstuvwxyz',
      },
      removalPolicy,
    });
    acknowledgeServerKey(this.serverKey);

    // The TOTP data-key ring (FactorKeyRing::parse in handlers/core/src/mfa.rs): key ids to key
    // material of at least 32 characters, and `current`, the id that seals. Secrets Manager generates
    // the first key, so no material is in the template: {"current":"k1","k1":"<64 letters and digits>"}.
    // No rotation schedule: a rotation adds a key and points `current` at it, the old keys stay so
    // the factors they sealed still open (FactorKeyRing::rotate_document; docs/aws.md).
    this.factorKeys = new secretsmanager.Secret(this, 'FactorKeys', {
      description: `keygate ${settings.stageName}: data-key ring sealing the TOTP secrets (read by the functions of /auth/mfa/*)`,
      encryptionKey: this.key,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ current: 'k1' }),
        generateStringKey: 'k1',
        passwordLength: 64,
        excludePunctuation: true,
        includeSpace: false,
      },
      removalPolicy,
    });
    acknowledgeFactorKeys(this.factorKeys);
  }

  /** The secret a function with `access` reads (none for 'none' and 'rotate', see addRotation). */
  secretFor(access: KeyAccess): secretsmanager.Secret | undefined {
    switch (access) {
      case 'private':
        return this.secret;
      case 'public':
        return this.publicSecret;
      default:
        return undefined;
    }
  }

  /** GetSecretValue on the server key, and Decrypt on the key only when Secrets Manager opens that secret. */
  grantReadServerKey(fn: lambda.IFunction): void {
    this.grantReadOne(fn, this.serverKey, 'ServerKey');
  }

  /**
   * GetSecretValue on the TOTP data-key ring, and Decrypt on the key only when Secrets Manager opens
   * that secret: for the functions whose catalog `factorKeys` is set, and no other.
   */
  grantReadFactorKeys(fn: lambda.IFunction): void {
    this.grantReadOne(fn, this.factorKeys, 'FactorKeys');
  }

  /** The functions granted `ReadSecretsAtInit`, so that each gets the statement once. */
  private readonly readingAtInit = new Set<lambda.IFunction>();

  /**
   * `Read<which>` (GetSecretValue on `secret`) and `Decrypt<which>ViaSecretsManager` (its ARN as
   * encryption context); and, once per function, `ReadSecretsAtInit`: BatchGetSecretValue, with which
   * a function reads all its secrets at init in one call (handlers/aws/src/secrets.rs,
   * `read_at_init`). That action has no resource type, so its resource is `*`; it opens nothing by
   * itself: Secrets Manager still authorises each secret of a batch as a GetSecretValue on its ARN.
   */
  private grantReadOne(fn: lambda.IFunction, secret: secretsmanager.ISecret, which: string): void {
    if (!this.readingAtInit.has(fn)) {
      this.readingAtInit.add(fn);
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          sid: 'ReadSecretsAtInit',
          actions: ['secretsmanager:BatchGetSecretValue'],
          resources: ['*'],
        }),
      );
    }
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: `Read${which}`,
        actions: ['secretsmanager:GetSecretValue'],
        resources: [secret.secretArn],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: `Decrypt${which}ViaSecretsManager`,
        actions: ['kms:Decrypt'],
        resources: [this.key.keyArn],
        conditions: {
          StringEquals: {
            'kms:ViaService': secretsManagerViaService(),
            'kms:EncryptionContext:SecretARN': secret.secretArn,
          },
        },
      }),
    );
  }

  /**
   * Grants an API function what its key access needs: GetSecretValue on that one secret, and Decrypt
   * on the key only when Secrets Manager calls KMS for that secret (its ARN is the encryption
   * context Secrets Manager sends), so a verifier's Decrypt cannot open the signing secret either.
   * 'none' grants nothing.
   */
  grantRead(fn: lambda.IFunction, access: KeyAccess): void {
    const secret = this.secretFor(access);
    if (!secret) {
      return;
    }
    this.grantReadOne(fn, secret, access === 'private' ? 'SigningKeys' : 'PublicKeys');
  }

  /**
   * Makes `fn` the rotation function of the secret: the four-step rotation permissions on this
   * secret only, an invoke permission for Secrets Manager bound to this secret, and the schedule
   * (which rotates once immediately when it is created).
   */
  addRotation(fn: lambda.Function, days: number): secretsmanager.CfnRotationSchedule {
    const rotationPolicy = new iam.Policy(this, 'RotationPolicy', {
      statements: [
        new iam.PolicyStatement({
          sid: 'RotateSigningKeys',
          actions: [
            'secretsmanager:DescribeSecret',
            'secretsmanager:GetSecretValue',
            'secretsmanager:PutSecretValue',
            'secretsmanager:UpdateSecretVersionStage',
          ],
          resources: [this.secret.secretArn],
        }),
        new iam.PolicyStatement({
          // GetSecretValue to skip a write that would change nothing (a retried step).
          sid: 'WritePublicKeySet',
          actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
          resources: [this.publicSecret.secretArn],
        }),
        new iam.PolicyStatement({
          sid: 'UseSigningKeyCmkViaSecretsManager',
          actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
          resources: [this.key.keyArn],
          // A list under StringEquals matches either value (the context key is single-valued).
          conditions: {
            StringEquals: {
              'kms:ViaService': secretsManagerViaService(),
              'kms:EncryptionContext:SecretARN': [this.secret.secretArn, this.publicSecret.secretArn],
            },
          },
        }),
      ],
    });
    fn.role!.attachInlinePolicy(rotationPolicy);

    const permission = new lambda.CfnPermission(this, 'SecretsManagerInvoke', {
      action: 'lambda:InvokeFunction',
      functionName: fn.functionArn,
      principal: 'secretsmanager.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
      sourceArn: this.secret.secretArn,
    });

    const schedule = new secretsmanager.CfnRotationSchedule(this, 'RotationSchedule', {
      secretId: this.secret.secretArn,
      rotationLambdaArn: fn.functionArn,
      rotationRules: { scheduleExpression: `rate(${days} days)` },
      rotateImmediatelyOnUpdate: true,
    });
    // The immediate first rotation must find its permissions in place.
    schedule.node.addDependency(rotationPolicy, permission);
    return schedule;
  }
}
