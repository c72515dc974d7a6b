import { DEFAULT_REGION } from './common';
import { DeploymentTarget, StageName } from './types';

/** Where the pipeline reads the repository from: a CodeStar (CodeConnections) connection. */
export interface SourceSettings {
  /** ARN of a connection in AVAILABLE state (created once in the console; see docs/operations.md). */
  readonly connectionArn: string;
  /** owner/name of the repository. */
  readonly repository: string;
  readonly branch: string;
}

/** Tool versions the pipeline's CodeBuild steps install (the pinned versions of the project). */
export interface ToolchainSettings {
  /** rustup toolchain. */
  readonly rust: string;
  /** cargo-lambda from PyPI. */
  readonly cargoLambda: string;
}

export interface PipelineSettings {
  readonly stackName: string;
  /** Account and region the pipeline itself lives in. */
  readonly target: DeploymentTarget;
  readonly source: SourceSettings;
  readonly toolchain: ToolchainSettings;
  /** Stages that need a manual approval in the pipeline before they deploy. */
  readonly manualApprovalBefore: readonly StageName[];
}

export const PIPELINE_DEFAULTS: Omit<PipelineSettings, 'source'> & { readonly branch: string } = {
  stackName: 'keygate-pipeline',
  target: { region: DEFAULT_REGION },
  branch: 'main',
  toolchain: { rust: '1.95.0', cargoLambda: '1.9.2' },
  manualApprovalBefore: ['prod'],
};
