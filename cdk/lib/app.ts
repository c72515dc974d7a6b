import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DeploymentOverrides, StageName, allStageSettings, pipelineSettings, pipelineStageSettings } from '../config';
import { KeygatePipelineStack } from './pipeline/pipeline-stack';
import { KeygateStage } from './stage';

export interface BuildAppOptions {
  /** Stages to synthesise as directly deployable stages (default: all). */
  readonly stages?: readonly StageName[];
  /** Account ids, alarm emails and the pipeline source. */
  readonly overrides?: DeploymentOverrides;
  /** Workspace Cargo.toml (tests point this elsewhere only if they must). */
  readonly manifestPath?: string;
}

/** Construct ids of the directly deployable stages: keygate-dev, keygate-staging, keygate-prod. */
export function stageId(stage: StageName): string {
  return `keygate-${stage}`;
}

/**
 * Adds the keygate stages and, when its source is configured, the pipeline to `app`, and runs
 * cdk-nag's AwsSolutions checks on everything the app synthesises.
 */
export function buildApp(app: App, options: BuildAppOptions = {}): { stages: KeygateStage[]; pipeline?: KeygatePipelineStack } {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const overrides = options.overrides ?? {};
  const all = allStageSettings(overrides);
  const wanted = options.stages ?? all.map((s) => s.stageName);
  const stages = all
    .filter((s) => wanted.includes(s.stageName))
    .map((settings) => new KeygateStage(app, stageId(settings.stageName), { settings, manifestPath: options.manifestPath }));

  const pipelineConfig = pipelineSettings(overrides);
  const pipeline = pipelineConfig
    ? new KeygatePipelineStack(app, 'KeygatePipeline', {
        pipeline: pipelineConfig,
        stages: pipelineStageSettings(pipelineConfig, overrides),
        manifestPath: options.manifestPath,
      })
    : undefined;
  return { stages, pipeline };
}
