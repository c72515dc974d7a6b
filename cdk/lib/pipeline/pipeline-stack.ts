import { CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as pipelines from 'aws-cdk-lib/pipelines';
import { Construct } from 'constructs';
import { PipelineSettings, StageSettings } from '../../config';
import { acknowledgePipelineFindings } from '../nag';
import { KeygateStage } from '../stage';

export interface KeygatePipelineStackProps extends StackProps {
  readonly pipeline: PipelineSettings;
  /** The stages to promote through, in order. */
  readonly stages: readonly StageSettings[];
  readonly manifestPath?: string;
}

/** Pinned CLI versions the pipeline's own CodeBuild steps install. */
export const CDK_CLI_VERSION = '2.1148.1';
export const CDK_ASSETS_VERSION = '4.7.3';

/** Directory (inside the synth step's work tree) the smoke binary is copied to for later steps. */
export const SMOKE_DIR = 'smoke-bin';

const BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0;

/** Commands that put the pinned Rust toolchain and cargo-lambda (with zig) on the PATH. */
export function toolchainInstallCommands(p: PipelineSettings): string[] {
  return [
    `curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy --default-toolchain ${p.toolchain.rust}`,
    'export PATH="$HOME/.cargo/bin:$PATH"',
    'python3 -m venv .venv',
    `.venv/bin/pip install --quiet cargo-lambda==${p.toolchain.cargoLambda}`,
    'export PATH="$PWD/.venv/bin:$PATH"',
    'cargo --version && cargo lambda --version',
  ];
}

/**
 * The delivery pipeline: source from a CodeStar connection, a synth step that builds the Rust
 * functions, runs the project's test command and synthesises the app, then dev -> staging -> prod
 * with a manual approval before prod and the smoke test against every stage after it deploys.
 * No step needs Docker; stage accounts may differ from the pipeline's (cross-account KMS keys).
 */
export class KeygatePipelineStack extends Stack {
  readonly pipeline: pipelines.CodePipeline;
  readonly stages: KeygateStage[] = [];

  constructor(scope: Construct, id: string, props: KeygatePipelineStackProps) {
    const p = props.pipeline;
    super(scope, id, {
      ...props,
      stackName: p.stackName,
      env: { account: p.target.account, region: p.target.region },
      description: 'keygate: delivery pipeline (dev -> staging -> prod)',
    });

    const source = pipelines.CodePipelineSource.connection(p.source.repository, p.source.branch, {
      connectionArn: p.source.connectionArn,
      triggerOnPush: true,
    });

    const synth = new pipelines.CodeBuildStep('Synth', {
      input: source,
      installCommands: [...toolchainInstallCommands(p), 'npm ci'],
      commands: [
        // One target directory for the test command, the bundling in cdk synth and the smoke build.
        'export PATH="$HOME/.cargo/bin:$PWD/.venv/bin:$PATH" CARGO_TARGET_DIR="$PWD/target"',
        // The README test command: Rust tests, local-server smoke test, CDK tests, synth with bundling, cfn-lint.
        'bash .ci/run',
        'npx cdk synth',
        // The smoke tool for the post-deployment steps, built once here (same image as those steps).
        'cargo build --locked -p keygate-smoke --bin keygate-smoke',
        `mkdir -p ${SMOKE_DIR} && cp "$CARGO_TARGET_DIR/debug/keygate-smoke" ${SMOKE_DIR}/`,
      ],
      primaryOutputDirectory: 'cdk.out',
      env: { CI: 'true' },
      buildEnvironment: { buildImage: BUILD_IMAGE, computeType: codebuild.ComputeType.LARGE, privileged: false },
      timeout: Duration.minutes(90),
    });
    const smokeBinary = synth.addOutputDirectory(SMOKE_DIR);

    this.pipeline = new pipelines.CodePipeline(this, 'Pipeline', {
      pipelineName: 'keygate',
      pipelineType: codepipeline.PipelineType.V2,
      synth,
      crossAccountKeys: true,
      enableKeyRotation: true,
      selfMutation: true,
      dockerEnabledForSynth: false,
      dockerEnabledForSelfMutation: false,
      publishAssetsInParallel: false,
      cliVersion: CDK_CLI_VERSION,
      cdkAssetsCliVersion: CDK_ASSETS_VERSION,
      codeBuildDefaults: {
        buildEnvironment: { buildImage: BUILD_IMAGE, privileged: false },
      },
    });

    for (const settings of props.stages) {
      const stage = new KeygateStage(this, capitalise(settings.stageName), { settings, manifestPath: props.manifestPath });
      this.stages.push(stage);
      const pre = p.manualApprovalBefore.includes(settings.stageName)
        ? [new pipelines.ManualApprovalStep(`Approve-${settings.stageName}`, { comment: `Promote to ${settings.stageName}: ${settings.stackName}` })]
        : [];
      const smoke = new pipelines.CodeBuildStep(`Smoke-${settings.stageName}`, {
        input: smokeBinary,
        envFromCfnOutputs: { API_URL: stage.service.apiUrl },
        // The SES mailbox simulator takes the throwaway user's verification mail without a bounce.
        commands: ['chmod +x keygate-smoke', 'export PATH="$PWD:$PATH"', 'keygate-smoke --base-url "$API_URL" --email-domain simulator.amazonses.com'],
        buildEnvironment: { buildImage: BUILD_IMAGE, privileged: false },
        timeout: Duration.minutes(10),
      });
      this.pipeline.addStage(stage, { pre, post: [smoke] });
    }

    this.pipeline.buildPipeline();
    this.useSubForActionRoleArns();
    new CfnOutput(this, 'PipelineName', { value: this.pipeline.pipeline.pipelineName });
    acknowledgePipelineFindings(this);
  }

  private useSubForActionRoleArns(): void {
    const cfn = this.pipeline.pipeline.node.defaultChild as codepipeline.CfnPipeline;
    const stages = this.resolve(cfn.stages) as { actions?: { configuration?: Record<string, unknown> }[] }[];
    stages.forEach((stage, i) =>
      (stage.actions ?? []).forEach((action, j) => {
        const role = action.configuration?.RoleArn as Record<string, unknown> | undefined;
        const sub = role && typeof role === 'object' ? joinToSub(role['Fn::Join']) : undefined;
        if (sub) {
          cfn.addPropertyOverride(`Stages.${i}.Actions.${j}.Configuration.RoleArn`, sub);
        }
      }),
    );
  }
}

/**
 * CDK renders the deploy actions' role ARNs as Fn::Join with an empty delimiter, which cfn-lint
 * (E3703) rejects for CodePipeline action configurations; the same value as Fn::Sub passes.
 */
function joinToSub(join: unknown): { 'Fn::Sub': string } | undefined {
  if (!Array.isArray(join) || join[0] !== '' || !Array.isArray(join[1])) return undefined;
  let out = '';
  for (const part of join[1] as unknown[]) {
    if (typeof part === 'string') {
      out += part.replace(/\$\{/g, '${!');
    } else if (part && typeof part === 'object' && 'Ref' in part && typeof (part as { Ref: unknown }).Ref === 'string') {
      out += `\${${(part as { Ref: string }).Ref}}`;
    } else if (part && typeof part === 'object' && 'Fn::GetAtt' in part) {
      const [res, attr] = (part as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'];
      out += `\${${res}.${attr}}`;
    } else {
      return undefined;
    }
  }
  return { 'Fn::Sub': out };
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
