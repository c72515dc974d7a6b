import { CfnElement, Stack, Token, Validations } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as pipelines from 'aws-cdk-lib/pipelines';
import { IConstruct } from 'constructs';

/**
 * Every cdk-nag (AwsSolutions) acknowledgement of the app, each on the narrowest construct that
 * carries the finding and with the reason it is acceptable. The tests fail on any finding that
 * is not acknowledged here.
 */

function ack(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** The server key: rotating it would orphan the email hashes already in the audit logs. */
export function acknowledgeServerKey(secret: IConstruct): void {
  ack(
    secret,
    'AwsSolutions-SMG4',
    'The server key keys the audit email hashes, the HMAC of the mailed codes and the seal of the mail outbox; rotating it would make hashes logged before and after unrelatable and void every live code and queued mail, so it is replaced deliberately rather than on a schedule. It is encrypted with the customer-managed key and readable only by the functions with table access (those that emit audit events, check codes or deliver mail).',
  );
}

/** The TOTP data-key ring: rotated by adding a key, never by replacing the one that sealed. */
export function acknowledgeFactorKeys(secret: IConstruct): void {
  ack(
    secret,
    'AwsSolutions-SMG4',
    'The TOTP data-key ring seals every enrolled factor\'s secret under the key id it names; a scheduled Secrets Manager rotation would replace the document and with it the keys that open the factors already enrolled. It is rotated deliberately instead: a new key is added and `current` pointed at it while the old keys stay, so old factors still open (FactorKeyRing::rotate_document, docs/aws.md). It is encrypted with the customer-managed key and readable only by the functions whose contract entry has factor_keys (account-mfa).',
  );
}

/** The function role's own policy: the X-Ray statement CDK adds for active tracing. */
export function acknowledgeFunctionRole(policy: iam.Policy | IConstruct): void {
  ack(
    policy,
    'AwsSolutions-IAM5[Resource::*]',
    'xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) and secretsmanager:BatchGetSecretValue (every secret of the init in one call) support no resource-level permissions; BatchGetSecretValue opens nothing by itself (each secret of a batch is authorised as a GetSecretValue on its own ARN, granted for this function\'s secrets only); every other statement of this role names its resource.',
  );
}

/** The public key-set secret, written by the signing secret's rotation function. */
export function acknowledgePublicKeySecret(secret: IConstruct): void {
  ack(
    secret,
    'AwsSolutions-SMG4',
    'Holds only public keys (no credential to rotate): rotate-keys rewrites it in each step of the signing secret\'s own rotation that changes what the key set publishes (createSecret, finishSecret), so it follows that schedule.',
  );
}

/** The mailer's dead-letter queue (the on-failure destination of its stream mapping). */
export function acknowledgeMailDeadLetterQueue(queue: IConstruct): void {
  ack(
    queue,
    'AwsSolutions-SQS3',
    'This queue is itself the dead-letter queue: the on-failure destination of the mailer\'s stream mapping, which Lambda writes the coordinates of failed batches to; an alarm fires on its first message and an operator reads it, so there is nothing to redrive it to.',
  );
}

const PUBLIC_API_REASON =
  'keygate is the token issuer: register, login, refresh, logout, email verification, password reset and the JWKS/discovery documents must be callable without a prior credential, and the bearer-protected routes (me, logout-all, password) verify the access token in the function (signature against the JWKS, iss, aud, exp, revokedBefore watermark), which a gateway authorizer cannot do for its own issuer.';

/** A public method of the authentication API (REST). */
export function acknowledgeAuthMethod(method: apigateway.Method): void {
  ack(method, 'AwsSolutions-APIG4', PUBLIC_API_REASON);
  ack(method, 'AwsSolutions-COG4', `${PUBLIC_API_REASON} Cognito is not used: keygate replaces it.`);
}

/** A public route of the authentication API (HTTP API). */
export function acknowledgeAuthRoute(route: apigwv2.HttpRoute): void {
  ack(route, 'AwsSolutions-APIG4', PUBLIC_API_REASON);
}

/** The account-level role API Gateway uses to write access and execution logs. */
export function acknowledgeApiGatewayLogRole(role: IConstruct): void {
  ack(
    role,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
    'AmazonAPIGatewayPushToCloudWatchLogs is the AWS-documented policy for the one account-wide API Gateway logging role; API Gateway needs it to deliver the access logs and execution logs this stage enables.',
  );
}

/** Acknowledgements that belong to the service stack as a whole (none: all are per construct). */
export function acknowledgeServiceFindings(stack: Stack): void {
  for (const c of stack.node.findAll()) {
    if (c instanceof apigateway.RestApi && c.node.tryFindChild('CloudWatchRole')) {
      acknowledgeApiGatewayLogRole(c.node.findChild('CloudWatchRole'));
    }
  }
}

/**
 * The roles CDK Pipelines generates. Their wildcards are the CDK grant patterns for the
 * pipeline's own artifact bucket and KMS key and for the CodeBuild projects' own log groups and
 * report groups; the pipeline construct offers no way to narrow them.
 */
export function acknowledgePipelineFindings(stack: Stack): void {
  for (const c of stack.node.findAll()) {
    if (c instanceof pipelines.CodePipeline) {
      acknowledgeCodePipeline(stack, c);
    }
  }
}

function acknowledgeCodePipeline(stack: Stack, pipeline: pipelines.CodePipeline): void {
  const inner = pipeline.pipeline;
  const bucketId = stack.getLogicalId(inner.artifactBucket.node.defaultChild as CfnElement);
  const artifactReason =
    'CDK Pipelines grant on its own artifact bucket (read/write of pipeline artifacts under the bucket); the bucket and its KMS key are used by this pipeline only.';
  for (const action of ['s3:GetObject*', 's3:GetBucket*', 's3:List*', 's3:DeleteObject*', 's3:Abort*']) {
    ack(pipeline, `AwsSolutions-IAM5[Action::${action}]`, artifactReason);
  }
  ack(pipeline, `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/*]`, artifactReason);
  const keyReason =
    'CDK Pipelines grant on the pipeline artifact key (encrypt/decrypt of artifacts with data keys); the key policy limits it to this pipeline and the stage accounts.';
  ack(pipeline, 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]', keyReason);
  ack(pipeline, 'AwsSolutions-IAM5[Action::kms:ReEncrypt*]', keyReason);

  ack(
    inner.artifactBucket,
    'AwsSolutions-S1',
    'Pipeline artifact bucket: written and read only by the pipeline roles, objects are KMS-encrypted build artifacts; CloudTrail records access. A second bucket for server access logs would need the same acknowledgement.',
  );

  const region = stack.region;
  const partition = Token.isUnresolved(region) ? '<AWS::Partition>' : 'aws';
  const regionPart = Token.isUnresolved(region) ? '<AWS::Region>' : region;
  const accountPart = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
  for (const c of pipeline.node.findAll()) {
    if (c instanceof codebuild.Project && c.role) {
      const projectId = stack.getLogicalId(c.node.defaultChild as CfnElement);
      const policy = c.role.node.tryFindChild('DefaultPolicy') ?? c.role;
      ack(
        policy,
        `AwsSolutions-IAM5[Resource::arn:${partition}:logs:${regionPart}:${accountPart}:log-group:/aws/codebuild/<${projectId}>:*]`,
        'Log streams of this CodeBuild project\'s own log group: stream names are created per build.',
      );
      ack(
        policy,
        `AwsSolutions-IAM5[Resource::arn:${partition}:codebuild:${regionPart}:${accountPart}:report-group/<${projectId}>-*]`,
        'Report groups of this CodeBuild project: CodeBuild names them after the project per report.',
      );
    }
  }

  const selfMutation = pipeline.node.tryFindChild('UpdatePipeline')?.node.tryFindChild('SelfMutation');
  if (selfMutation) {
    const role = (selfMutation as codebuild.Project).role ?? selfMutation;
    const policy = role.node.tryFindChild('DefaultPolicy') ?? role;
    ack(
      policy,
      `AwsSolutions-IAM5[Resource::arn:*:iam::${accountPart}:role/*]`,
      'Self-mutation assumes the CDK bootstrap deploy roles (cdk-*) of the pipeline account; their names carry the bootstrap qualifier, the trust policies of those roles are the boundary.',
    );
    ack(
      policy,
      'AwsSolutions-IAM5[Resource::*]',
      'Self-mutation reads stack state with cloudformation:DescribeStacks and s3:ListBucket, which CDK Pipelines grants without resource scoping.',
    );
  }

  const fileRole = pipeline.node.tryFindChild('Assets')?.node.tryFindChild('FileRole');
  if (fileRole) {
    const policy = fileRole.node.tryFindChild('DefaultPolicy') ?? fileRole;
    ack(policy, `AwsSolutions-IAM5[Resource::arn:${partition}:logs:${regionPart}:${accountPart}:log-group:/aws/codebuild/*]`, 'Shared role of the asset-publishing CodeBuild projects, which CDK Pipelines creates without fixed names: log streams of those projects.');
    ack(policy, `AwsSolutions-IAM5[Resource::arn:${partition}:codebuild:${regionPart}:${accountPart}:report-group/*]`, 'Shared role of the asset-publishing CodeBuild projects: their report groups, named by CodeBuild.');
    ack(policy, 'AwsSolutions-IAM5[Resource::*]', 'Asset publishing assumes the file-publishing roles of the stage accounts, whose ARNs CDK Pipelines leaves open (cross-account stages).');
  }
}
