import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { FunctionName, StageSettings } from '../../config';
import { FUNCTION_SPECS } from '../catalog';
import { CONTRACT, environmentFor } from '../contract';
import { acknowledgeFunctionRole } from '../nag';

/**
 * The workspace package and binary every function runs (cdk/contract.json): the functions share one
 * build, so bundling links it once per synth instead of once per function; each function stays its
 * own Lambda function (role, memory, route, environment) and runs the code its KEYGATE_FUNCTION names.
 */
export const FUNCTION_BINARY = CONTRACT.binary;

export interface KeygateFunctionProps {
  readonly name: FunctionName;
  readonly settings: StageSettings;
  /** Path to the workspace Cargo.toml. */
  readonly manifestPath: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly timeout: Duration;
}

/**
 * One keygate Lambda function, built the same way for all of them: the workspace's function binary
 * through cargo-lambda, told which function it is by KEYGATE_FUNCTION, provided.al2023, its own log group with the stage's retention,
 * active X-Ray tracing and its own role that starts with nothing but writing to that log group.
 */
export class KeygateFunction extends Construct {
  readonly fn: RustFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: KeygateFunctionProps) {
    super(scope, id);
    const { name, settings } = props;
    const spec = FUNCTION_SPECS[name];
    const architecture = settings.functions.architecture === 'ARM_64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64;

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: settings.logRetentionDays as logs.RetentionDays,
      removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `keygate ${settings.stageName} ${name}`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );

    this.fn = new RustFunction(this, 'Function', {
      manifestPath: props.manifestPath,
      binaryName: FUNCTION_BINARY,
      runtime: 'provided.al2023',
      architecture,
      // -p: the workspace has default-members, and cargo looks for --bin only in those otherwise.
      bundling: { architecture, cargoLambdaFlags: ['--package', FUNCTION_BINARY] },
      description: `keygate ${settings.stageName}: ${spec.description}`,
      memorySize: settings.functions.memoryMb[name],
      timeout: props.timeout,
      environment: { ...props.environment, ...environmentFor({ function: name }) },
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      role: this.role,
    });
    acknowledgeFunctionRole(this.role.node.findChild('DefaultPolicy'));
  }
}
