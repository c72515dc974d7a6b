import { Aws, Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { FUNCTION_NAMES, FunctionName, StageSettings, mailFrom, metricsNamespace } from '../../config';
import { FUNCTION_SPECS, KeyAccess, iamActionsFor, keyAccessUnder } from '../catalog';
import { environmentFor } from '../contract';
import { KeygateTable } from '../data/table';
import { SigningKeys } from '../keys/signing-keys';
import { MailIdentity } from '../mail/ses';
import { KeygateFunction } from './rust-function';

export interface KeygateFunctionsProps {
  readonly settings: StageSettings;
  readonly manifestPath: string;
  readonly table: KeygateTable;
  readonly keys: SigningKeys;
  /** The SES identity and configuration set the mailer sends with. */
  readonly mail: MailIdentity;
  /** The issuer setting's value (a plain string: must not reference the API's deployment stage). */
  readonly issuer: string;
}

/**
 * The name of each key secret a function may read (rotate-keys: both, it rotates one and writes
 * the other); a function is not told the name of a secret it has no grant on.
 */
export function keyEnvironment(access: KeyAccess, keys: SigningKeys): Record<string, string> {
  const signs = access === 'private' || access === 'rotate';
  const verifies = access === 'public' || access === 'rotate';
  return environmentFor({
    keysSecretId: signs ? keys.secret.secretArn : undefined,
    publicKeysSecretId: verifies ? keys.publicSecret.secretArn : undefined,
  });
}

/**
 * The environment every function gets: each stage value under the variable of the contract's
 * setting of the same name (cdk/contract.json), and the log filter.
 */
export function baseEnvironment(settings: StageSettings, issuer: string): Record<string, string> {
  return {
    ...environmentFor({ ...settings.auth, issuer, metricsNamespace: metricsNamespace(settings.stageName) }),
    RUST_LOG: settings.functions.logLevel,
  };
}

/**
 * The account rules of mail every API function applies (app URL of the links, verified-email
 * requirement, code lifetimes, cooldown and cap): the stage's mail values that are contract settings.
 */
export function mailRulesEnvironment(settings: StageSettings): Record<string, string> {
  const { senderDomain: _domain, fromName: _name, fromLocalPart: _local, customMailFromDomain: _mailFrom, ...rules } = settings.mail;
  return environmentFor(rules);
}

/**
 * The mailer's whole environment: it reads only its table, the server key the outbox is sealed
 * under, the sender and configuration set, and the metrics namespace (keygate_lambda::shell::run_mailer),
 * so it is told nothing of the token policy.
 */
export function mailerEnvironment(settings: StageSettings, table: KeygateTable, keys: SigningKeys, mail: MailIdentity): Record<string, string> {
  return {
    ...environmentFor({
      tableName: table.table.tableName,
      serverKeySecretId: keys.serverKey.secretArn,
      metricsNamespace: metricsNamespace(settings.stageName),
      mailFrom: mailFrom(settings.mail),
      sesConfigurationSet: mail.configurationSet.configurationSetName,
    }),
    RUST_LOG: settings.functions.logLevel,
  };
}

/**
 * Every keygate function, each with exactly the table calls the contract lists for it and read
 * access to the key secret its catalog `keys` names (none for register and logout), and to the TOTP
 * data-key ring exactly when its catalog `factorKeys` is set (account-mfa); rotate-keys
 * gets the rotation permissions instead, and the mailer alone may send mail (as the stage's SES
 * identity, with its configuration set).
 */
export class KeygateFunctions extends Construct {
  readonly byName: Readonly<Record<FunctionName, KeygateFunction>>;

  constructor(scope: Construct, id: string, props: KeygateFunctionsProps) {
    super(scope, id);
    const { settings, table, keys } = props;
    const env = baseEnvironment(settings, props.issuer);
    const apiEnv = mailRulesEnvironment(settings);
    const byName = {} as Record<FunctionName, KeygateFunction>;

    for (const name of FUNCTION_NAMES) {
      const spec = FUNCTION_SPECS[name];
      const access = keyAccessUnder(spec.keys, settings.auth.signingAlg);
      let environment: Record<string, string>;
      if (name === 'mailer') {
        environment = mailerEnvironment(settings, table, keys, props.mail);
      } else {
        environment = { ...env, ...(spec.routes.length > 0 ? apiEnv : {}), ...keyEnvironment(access, keys) };
        // The functions with table access are the ones that emit audit events (the Rust shell reads
        // the server key exactly when it has a table).
        if (spec.tableAccess) {
          Object.assign(environment, environmentFor({ tableName: table.table.tableName, serverKeySecretId: keys.serverKey.secretArn }));
        }
      }
      // The TOTP data-key ring: named to, and readable by, the functions the contract flags only.
      if (spec.factorKeys) {
        Object.assign(environment, environmentFor({ factorKeysSecretId: keys.factorKeys.secretArn }));
      }
      const f = new KeygateFunction(this, pascal(name), {
        name,
        settings,
        manifestPath: props.manifestPath,
        environment,
        timeout: Duration.seconds(timeoutSeconds(name, settings)),
      });
      byName[name] = f;

      if (spec.tableAccess) {
        grantTableAccess(f, table, spec.tableAccess.table, spec.tableAccess.byUserIdIndex);
        keys.grantReadServerKey(f.fn);
      }
      keys.grantRead(f.fn, access);
      if (spec.factorKeys) {
        keys.grantReadFactorKeys(f.fn);
      }
    }
    props.mail.grantSend(byName.mailer.role);
    keys.addRotation(byName['rotate-keys'].fn, settings.keys.rotationDays);
    this.byName = byName;
  }
}

function grantTableAccess(
  f: KeygateFunction,
  table: KeygateTable,
  tableCalls: Parameters<typeof iamActionsFor>[0],
  indexCalls: readonly 'Query'[],
): void {
  const tableActions = iamActionsFor(tableCalls);
  if (tableActions.length > 0) {
    f.role.addToPolicy(new iam.PolicyStatement({ sid: 'TableItems', actions: tableActions, resources: [table.table.tableArn] }));
  }
  if (indexCalls.length > 0) {
    f.role.addToPolicy(new iam.PolicyStatement({ sid: 'QueryByUserId', actions: ['dynamodb:Query'], resources: [table.userIdIndexArn] }));
  }
  if (table.key) {
    const writes = tableActions.some((a) => a !== 'dynamodb:GetItem' && a !== 'dynamodb:Query');
    f.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'TableKeyViaDynamoDb',
        actions: writes ? ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'] : ['kms:Decrypt', 'kms:DescribeKey'],
        resources: [table.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${Aws.REGION}.amazonaws.com` } },
      }),
    );
  }
}

function timeoutSeconds(name: FunctionName, settings: StageSettings): number {
  switch (name) {
    case 'rotate-keys':
      return settings.functions.rotationTimeoutSeconds;
    case 'mailer':
      return settings.functions.mailerTimeoutSeconds;
    default:
      return settings.functions.timeoutSeconds;
  }
}

function pascal(name: string): string {
  return name
    .split('-')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
}
