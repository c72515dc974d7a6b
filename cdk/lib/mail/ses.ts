import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as ses from 'aws-cdk-lib/aws-ses';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { StageSettings } from '../../config';

export interface MailIdentityProps {
  readonly settings: StageSettings;
}

/**
 * What the stage sends mail as: the SES domain identity of `mail.senderDomain` (Easy DKIM, whose
 * three CNAMEs the stack outputs; optionally a custom MAIL FROM domain, whose MX and SPF records it
 * outputs too), and the configuration set every send names. The set requires
 * TLS to the receiving server (the mails carry codes), keeps bounced and complaining addresses on
 * the account's suppression list, and reports bounces, complaints and rejects to an encrypted SNS
 * topic for whoever subscribes (docs/aws.md, "Mail (SES)"); the alarms watch the account's reputation
 * rates (cdk/lib/observability/monitoring.ts).
 */
export class MailIdentity extends Construct {
  readonly identity: ses.EmailIdentity;
  readonly configurationSet: ses.ConfigurationSet;
  /** Bounce, complaint and reject notifications of the configuration set. */
  readonly eventsTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: MailIdentityProps) {
    super(scope, id);
    const { settings } = props;

    this.configurationSet = new ses.ConfigurationSet(this, 'ConfigurationSet', {
      // Named: a generated name grows with the stack name, and the mailer refuses one that is not
      // 1-64 letters, digits, '-' or '_' (handlers/aws/src/ses.rs); one set per stage and account.
      configurationSetName: `keygate-${settings.stageName}`,
      tlsPolicy: ses.ConfigurationSetTlsPolicy.REQUIRE,
      reputationMetrics: true,
      sendingEnabled: true,
      suppressionReasons: ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
    });
    this.identity = new ses.EmailIdentity(this, 'Identity', {
      identity: ses.Identity.domain(settings.mail.senderDomain),
      configurationSet: this.configurationSet,
      mailFromDomain: settings.mail.customMailFromDomain,
      // Until its MX record resolves, SES falls back to amazonses.com rather than refusing mail.
      mailFromBehaviorOnMxFailure: settings.mail.customMailFromDomain ? ses.MailFromBehaviorOnMxFailure.USE_DEFAULT_VALUE : undefined,
    });

    const topicKey = new kms.Key(this, 'EventsTopicKey', {
      description: `keygate ${settings.stageName}: encryption of the SES bounce and complaint topic`,
      enableKeyRotation: true,
      removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // SES publishes to the encrypted topic: it needs the key, for this account's configuration set only.
    topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'SesEventsPublish',
        principals: [new iam.ServicePrincipal('ses.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID, 'aws:SourceArn': this.configurationSetArn } },
      }),
    );
    this.eventsTopic = new sns.Topic(this, 'EventsTopic', {
      displayName: `keygate ${settings.stageName} SES bounces and complaints`,
      masterKey: topicKey,
      enforceSSL: true,
    });
    // The destination adds the topic policy that lets SES (this configuration set) publish.
    this.configurationSet.addEventDestination('Events', {
      destination: ses.EventDestination.snsTopic(this.eventsTopic),
      events: [ses.EmailSendingEvent.BOUNCE, ses.EmailSendingEvent.COMPLAINT, ses.EmailSendingEvent.REJECT],
    });
  }

  /** ARN of the configuration set (SendEmail is authorised on it as well as on the identity). */
  get configurationSetArn(): string {
    return Stack.of(this).formatArn({ service: 'ses', resource: 'configuration-set', resourceName: this.configurationSet.configurationSetName });
  }

  /**
   * ses:SendEmail (SES v2, simple content) as this identity with this configuration set, and
   * nothing else: no raw mail, no other identity or set.
   */
  grantSend(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'SendAsStageIdentity',
        actions: ['ses:SendEmail'],
        resources: [this.identity.emailIdentityArn, this.configurationSetArn],
      }),
    );
  }
}
