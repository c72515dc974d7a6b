#!/usr/bin/env node
/**
 * keygate CDK app entry. The only place that reads CDK context (and nothing else) to decide what
 * to synthesise:
 *
 *   keygate:stages          comma list of stages to synthesise for direct deploys (default all)
 *   keygate:account:<name>  account id of a stage (dev, staging, prod) or of the pipeline
 *   keygate:alarmEmail:<stage>  email subscribed to a stage's alarm topic
 *   keygate:connectionArn   CodeStar/CodeConnections connection ARN of the repository
 *   keygate:repository      owner/name of the repository
 *   keygate:branch          branch the pipeline follows (default main)
 *
 * The pipeline stack (KeygatePipeline) exists only when connectionArn and repository are set; it
 * then also needs keygate:account:pipeline (stages without an account deploy to that account).
 */
import { App } from 'aws-cdk-lib';
import { DeploymentOverrides, STAGE_NAMES, StageName } from '../config';
import { buildApp } from '../lib/app';

const app = new App();

function ctx(key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') {
    return undefined;
  }
  return String(value);
}

const stagesArg = ctx('keygate:stages');
const stages = stagesArg
  ? stagesArg.split(',').map((s) => {
      const name = s.trim();
      if (!(STAGE_NAMES as readonly string[]).includes(name)) {
        throw new Error(`keygate:stages: unknown stage ${name} (known: ${STAGE_NAMES.join(', ')})`);
      }
      return name as StageName;
    })
  : undefined;

const overrides: DeploymentOverrides = {
  accounts: {
    dev: ctx('keygate:account:dev'),
    staging: ctx('keygate:account:staging'),
    prod: ctx('keygate:account:prod'),
    pipeline: ctx('keygate:account:pipeline'),
  },
  alarmEmails: {
    dev: ctx('keygate:alarmEmail:dev'),
    staging: ctx('keygate:alarmEmail:staging'),
    prod: ctx('keygate:alarmEmail:prod'),
  },
  source: {
    connectionArn: ctx('keygate:connectionArn'),
    repository: ctx('keygate:repository'),
    branch: ctx('keygate:branch'),
  },
};

const { pipeline } = buildApp(app, { stages, overrides });
if (!pipeline) {
  process.stderr.write('keygate: pipeline not synthesised (set context keygate:connectionArn, keygate:repository and keygate:account:pipeline to add it)\n');
}
app.synth();
