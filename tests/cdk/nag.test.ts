import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack, Stage, Validations } from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import { IConstruct } from 'constructs';
import { buildApp } from '../../cdk/lib/app';
import { newApp, validationOverrides } from './helpers';

interface Report {
  pluginReports: { pluginName: string; conclusion: string; violations: { ruleName: string; severity: string; violatingConstructs: { constructPath: string }[] }[] }[];
}

function synthReport(app: App): Report {
  const assembly = app.synth();
  return JSON.parse(fs.readFileSync(path.join(assembly.directory, 'validation-report.json'), 'utf8')) as Report;
}

function acknowledgements(root: IConstruct): { path: string; id: string; reason: string; scope: IConstruct }[] {
  const out: { path: string; id: string; reason: string; scope: IConstruct }[] = [];
  for (const c of root.node.findAll()) {
    for (const entry of c.node.metadata) {
      if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY) {
        for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
          out.push({ path: c.node.path, id, reason, scope: c });
        }
      }
    }
  }
  return out;
}

describe('cdk-nag AwsSolutions', () => {
  test('the whole app (three stages and the pipeline) has zero unacknowledged findings', () => {
    const app = newApp();
    const { stages, pipeline } = buildApp(app, { overrides: validationOverrides() });
    expect(stages).toHaveLength(3);
    expect(pipeline).toBeDefined();
    const report = synthReport(app);
    const violations = report.pluginReports.flatMap((r) => r.violations.map((v) => `${r.pluginName} ${v.severity} ${v.ruleName} at ${v.violatingConstructs.map((c) => c.constructPath).join(', ')}`));
    expect(violations).toEqual([]);
  });

  test('the checks run on every synth of the app: an unacknowledged finding fails it', () => {
    const app = newApp();
    const { stages } = buildApp(app, { stages: ['dev'] });
    new sns.Topic(stages[0].service, 'UnencryptedTopic');
    expect(() => app.synth()).toThrow(/AwsSolutions-SNS/);
  });

  test('every acknowledgement names a specific rule or finding and a written reason', () => {
    const app = newApp();
    buildApp(app, { overrides: validationOverrides() });
    const acks = acknowledgements(app);
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) {
      // aws-cdk-lib records plain ids under its Annotation:: namespace; cdk-nag reads them back.
      expect(a.id).toMatch(/^(Annotation::)?AwsSolutions-[A-Z]+[0-9]+(\[.+\])?$/);
      expect(a.reason.length).toBeGreaterThan(40);
    }
    // No stack- or stage-wide blanket acknowledgements: each sits on the construct with the finding.
    for (const a of acks) {
      expect(Stack.isStack(a.scope) || Stage.isStage(a.scope) || a.scope === app).toBe(false);
    }
  });
});
