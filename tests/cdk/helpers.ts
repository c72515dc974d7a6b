import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DeploymentOverrides, StageName, StageSettings, stageSettings } from '../../cdk/config';
import { buildApp } from '../../cdk/lib/app';
import { KeygateServiceStack } from '../../cdk/lib/service-stack';

/** The validation deployment identity (the same one synth:all uses for the pipeline). */
export function validationOverrides(): DeploymentOverrides {
  const raw = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'cdk', 'scripts', 'validation-context.json'), 'utf8')) as Record<string, string>;
  return {
    accounts: { pipeline: raw['keygate:account:pipeline'] },
    source: { connectionArn: raw['keygate:connectionArn'], repository: raw['keygate:repository'], branch: raw['keygate:branch'] },
  };
}

export function tmpOutdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-cdk-test-'));
}

/** A fresh App with cdk-nag, as the entry point builds it (context comes from the jest setup). */
export function newApp(): App {
  return new App({ outdir: tmpOutdir() });
}

const cache = new Map<string, { stack: KeygateServiceStack; template: Template }>();

/** The service stack of one stage, synthesised once per test file. */
export function stageTemplate(stage: StageName): { stack: KeygateServiceStack; template: Template } {
  const hit = cache.get(stage);
  if (hit) return hit;
  const app = newApp();
  const { stages } = buildApp(app, { stages: [stage] });
  const stack = stages[0].service;
  const entry = { stack, template: Template.fromStack(stack) };
  cache.set(stage, entry);
  return entry;
}

/** A service stack built from modified settings (for selectable options no stage uses by default). */
export function customTemplate(stage: StageName, change: (s: StageSettings) => StageSettings): Template {
  const app = newApp();
  const settings = change(stageSettings(stage));
  const { KeygateStage } = require('../../cdk/lib/stage') as typeof import('../../cdk/lib/stage');
  const s = new KeygateStage(app, `custom-${stage}`, { settings });
  return Template.fromStack(s.service);
}

type Resources = Record<string, { Type: string; Properties?: Record<string, any>; DependsOn?: string[] | string; [k: string]: any }>;

/** Resources of a type, by logical id. */
export function resourcesOfType(template: Template, type: string): Resources {
  return template.findResources(type) as Resources;
}

/** The logical id of the single resource whose id starts with `prefix`. */
export function logicalId(template: Template, type: string, prefix: string): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) {
    throw new Error(`expected one ${type} with id prefix ${prefix}, found ${ids.join(', ') || 'none'}`);
  }
  return ids[0];
}
