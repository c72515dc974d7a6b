import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { StageSettings } from '../../config';

export const USER_ID_INDEX = 'byUserId';
export const TTL_ATTRIBUTE = 'expiresAt';

export interface KeygateTableProps {
  readonly settings: StageSettings;
}

/**
 * The single keygate table: users and refresh tokens (pk/sk), TTL on expiresAt, one sparse
 * KEYS_ONLY index byUserId, and a NEW_IMAGE stream: the mailer reads the outbox inserts from it
 * (cdk/lib/mail/outbox-delivery.ts). On demand by default; provisioned with target-tracking auto
 * scaling when the stage asks for it.
 */
export class KeygateTable extends Construct {
  readonly table: dynamodb.Table;
  /** The table's own KMS key when the stage chooses customer-managed encryption. */
  readonly key?: kms.Key;

  constructor(scope: Construct, id: string, props: KeygateTableProps) {
    super(scope, id);
    const { settings } = props;
    const t = settings.table;
    const removalPolicy = settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    if (t.encryption === 'CUSTOMER_MANAGED') {
      this.key = new kms.Key(this, 'Key', {
        description: `keygate ${settings.stageName}: encryption of the users and refresh-token table`,
        enableKeyRotation: true,
        removalPolicy,
        pendingWindow: Duration.days(settings.retainData ? 30 : 7),
      });
    }

    const provisioned = t.billing.mode === 'PROVISIONED' ? t.billing : undefined;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: TTL_ATTRIBUTE,
      // NEW_IMAGE: an outbox insert carries the sealed mail itself; no old images are needed.
      stream: dynamodb.StreamViewType.NEW_IMAGE,
      billingMode: provisioned ? dynamodb.BillingMode.PROVISIONED : dynamodb.BillingMode.PAY_PER_REQUEST,
      readCapacity: provisioned?.read.min,
      writeCapacity: provisioned?.write.min,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: t.pointInTimeRecovery },
      deletionProtection: t.deletionProtection,
      removalPolicy,
      encryption: this.key ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.AWS_MANAGED,
      encryptionKey: this.key,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: USER_ID_INDEX,
      partitionKey: { name: 'userId', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
      readCapacity: provisioned?.read.min,
      writeCapacity: provisioned?.write.min,
    });

    if (provisioned) {
      const read = this.table.autoScaleReadCapacity({ minCapacity: provisioned.read.min, maxCapacity: provisioned.read.max });
      read.scaleOnUtilization({ targetUtilizationPercent: provisioned.read.targetUtilizationPercent });
      const write = this.table.autoScaleWriteCapacity({ minCapacity: provisioned.write.min, maxCapacity: provisioned.write.max });
      write.scaleOnUtilization({ targetUtilizationPercent: provisioned.write.targetUtilizationPercent });
      const indexRead = this.table.autoScaleGlobalSecondaryIndexReadCapacity(USER_ID_INDEX, {
        minCapacity: provisioned.read.min,
        maxCapacity: provisioned.read.max,
      });
      indexRead.scaleOnUtilization({ targetUtilizationPercent: provisioned.read.targetUtilizationPercent });
      const indexWrite = this.table.autoScaleGlobalSecondaryIndexWriteCapacity(USER_ID_INDEX, {
        minCapacity: provisioned.write.min,
        maxCapacity: provisioned.write.max,
      });
      indexWrite.scaleOnUtilization({ targetUtilizationPercent: provisioned.write.targetUtilizationPercent });
    }
  }

  /** ARN of the byUserId index. */
  get userIdIndexArn(): string {
    return `${this.table.tableArn}/index/${USER_ID_INDEX}`;
  }
}
