import { CfnOutput, Fn, Stack, StackProps, Tags } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { ApiFunctionName, FUNCTION_NAMES, FunctionName, StageSettings } from '../config';
import { KeygateApi } from './api/api';
import { KeygateHttpApi } from './api/http-api';
import { ApiFirewall } from './api/waf';
import { API_FUNCTIONS, routeOf } from './catalog';
import { LiveAliases } from './concurrency/live-aliases';
import { KeygateTable } from './data/table';
import { KeygateFunctions } from './functions/functions';
import { KeygateFunction } from './functions/rust-function';
import { SigningKeys } from './keys/signing-keys';
import { OutboxDelivery } from './mail/outbox-delivery';
import { MailIdentity } from './mail/ses';
import { acknowledgeServiceFindings } from './nag';
import { Monitoring } from './observability/monitoring';
import { WORKSPACE_MANIFEST } from './paths';

export interface KeygateServiceStackProps extends StackProps {
  readonly settings: StageSettings;
  /** Workspace Cargo.toml; defaults to the repository's. */
  readonly manifestPath?: string;
}

/**
 * Everything one keygate stage runs: data, keys, mail (SES identity, the mailer's stream trigger),
 * functions, API (+ WAF for a REST API), concurrency, monitoring.
 */
export class KeygateServiceStack extends Stack {
  readonly apiUrl: CfnOutput;
  readonly jwksUrl: CfnOutput;
  readonly issuer: CfnOutput;
  readonly tableName: CfnOutput;
  readonly table: KeygateTable;
  readonly keys: SigningKeys;
  readonly mail: MailIdentity;
  readonly outbox: OutboxDelivery;
  /** The REST API, or the HTTP API with `api.kind: 'http'`. */
  readonly api: KeygateApi | KeygateHttpApi;
  readonly functions: KeygateFunctions;
  readonly aliases: LiveAliases;
  /** The WAF of the REST API (HTTP APIs cannot be associated with a web ACL). */
  readonly firewall?: ApiFirewall;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: KeygateServiceStackProps) {
    const { settings } = props;
    super(scope, id, {
      ...props,
      stackName: props.stackName ?? settings.stackName,
      description: `keygate ${settings.stageName}: serverless authentication service`,
      terminationProtection: settings.retainData,
    });

    this.table = new KeygateTable(this, 'Data', { settings });
    this.keys = new SigningKeys(this, 'Keys', { settings });
    this.mail = new MailIdentity(this, 'Mail', { settings });
    this.api = settings.api.kind === 'http' ? new KeygateHttpApi(this, 'Api', { settings }) : new KeygateApi(this, 'Api', { settings });
    const issuer = settings.auth.issuer ?? this.api.defaultIssuer;
    this.functions = new KeygateFunctions(this, 'Functions', {
      settings,
      manifestPath: props.manifestPath ?? WORKSPACE_MANIFEST,
      table: this.table,
      keys: this.keys,
      mail: this.mail,
      issuer,
    });
    this.outbox = new OutboxDelivery(this, 'Outbox', { settings, table: this.table, mailer: this.functions.byName.mailer });
    const apiFunctions = {} as Record<ApiFunctionName, KeygateFunction>;
    for (const name of API_FUNCTIONS) {
      apiFunctions[name] = this.functions.byName[name];
    }
    this.aliases = new LiveAliases(this, 'Concurrency', { settings, functions: apiFunctions });
    this.api.addRoutes(this.aliases.byName);
    if (this.api instanceof KeygateApi) {
      this.firewall = new ApiFirewall(this, 'Firewall', { settings, stage: this.api.api.deploymentStage });
    }
    this.monitoring = new Monitoring(this, 'Observability', {
      settings,
      api: this.api.metrics,
      table: this.table.table,
      functions: functionsByName(this.functions),
      mailDeadLetterQueue: this.outbox.deadLetterQueue,
    });

    const baseUrl = this.api.baseUrl;
    this.apiUrl = new CfnOutput(this, 'ApiUrl', { value: baseUrl, description: 'Base URL of the API stage (no trailing slash)' });
    this.jwksUrl = new CfnOutput(this, 'JwksUrl', { value: Fn.join('', [baseUrl, routeOf('jwks').path]), description: 'JWKS of the signing keys' });
    this.issuer = new CfnOutput(this, 'Issuer', { value: issuer, description: 'iss of the access tokens' });
    this.tableName = new CfnOutput(this, 'TableName', { value: this.table.table.tableName, description: 'DynamoDB table' });
    // The DNS records that verify the sender domain (Easy DKIM): publish them in its zone.
    this.mail.identity.dkimRecords.forEach((record, i) => {
      new CfnOutput(this, `MailDkimRecord${i + 1}`, {
        value: Fn.join(' ', [record.name, 'CNAME', record.value]),
        description: `DKIM CNAME ${i + 1} of 3 for ${settings.mail.senderDomain} (name CNAME value)`,
      });
    });
    const mailFromDomain = settings.mail.customMailFromDomain;
    if (mailFromDomain) {
      new CfnOutput(this, 'MailFromMxRecord', {
        value: `${mailFromDomain} MX 10 feedback-smtp.${this.region}.amazonses.com`,
        description: 'MX record of the custom MAIL FROM domain (name MX priority value)',
      });
      new CfnOutput(this, 'MailFromSpfRecord', {
        value: `${mailFromDomain} TXT "v=spf1 include:amazonses.com ~all"`,
        description: 'SPF record of the custom MAIL FROM domain (name TXT value)',
      });
    }
    new CfnOutput(this, 'MailEventsTopicArn', { value: this.mail.eventsTopic.topicArn, description: 'SNS topic of SES bounces, complaints and rejects' });
    new CfnOutput(this, 'MailDeadLetterQueueUrl', { value: this.outbox.deadLetterQueue.queueUrl, description: 'Failed mailer batches (stream coordinates)' });

    for (const [key, value] of Object.entries(settings.tags)) {
      Tags.of(this).add(key, value);
    }
    acknowledgeServiceFindings(this);
  }
}

function functionsByName(functions: KeygateFunctions): Record<FunctionName, lambda.Function> {
  const out = {} as Record<FunctionName, lambda.Function>;
  for (const name of FUNCTION_NAMES) {
    out[name] = functions.byName[name].fn;
  }
  return out;
}
