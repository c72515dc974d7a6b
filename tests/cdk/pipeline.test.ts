import { Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../cdk/lib/app';
import { newApp, resourcesOfType, validationOverrides } from './helpers';

function pipelineTemplate(accounts: Record<string, string> = {}): Template {
  const app = newApp();
  const overrides = validationOverrides();
  const { pipeline } = buildApp(app, { stages: [], overrides: { ...overrides, accounts: { ...overrides.accounts, ...accounts } } });
  return Template.fromStack(pipeline!);
}

describe('pipeline', () => {
  const template = pipelineTemplate({ prod: '333333333333' });
  const pipeline = Object.values(resourcesOfType(template, 'AWS::CodePipeline::Pipeline'))[0].Properties!;
  const stages = pipeline.Stages as { Name: string; Actions: any[] }[];
  const stage = (name: string) => stages.find((s) => s.Name === name)!;
  const projects = resourcesOfType(template, 'AWS::CodeBuild::Project');
  const buildSpec = (projectRef: string): any => JSON.parse(projects[projectRef].Properties!.Source.BuildSpec as string);
  /** All commands of a project's buildspec, install phase first, one per line. */
  const buildSpecOf = (projectRef: string): string => {
    const phases = buildSpec(projectRef).phases ?? {};
    return ['install', 'pre_build', 'build', 'post_build'].flatMap((p) => phases[p]?.commands ?? []).join('\n');
  };

  test('source -> build -> self-update -> assets -> dev -> staging -> prod', () => {
    const names = stages.map((s) => s.Name);
    expect(names.slice(0, 3)).toEqual(['Source', 'Build', 'UpdatePipeline']);
    expect(names.filter((n) => ['Dev', 'Staging', 'Prod'].includes(n))).toEqual(['Dev', 'Staging', 'Prod']);
    expect(names.indexOf('Dev')).toBeLessThan(names.indexOf('Staging'));
    expect(names.indexOf('Staging')).toBeLessThan(names.indexOf('Prod'));
    expect(names.indexOf('Assets')).toBeLessThan(names.indexOf('Dev'));
    expect(pipeline.PipelineType).toBe('V2');
  });

  test('source: the CodeStar connection, repository and branch from the settings', () => {
    const action = stage('Source').Actions[0];
    expect(action.ActionTypeId).toMatchObject({ Category: 'Source', Provider: 'CodeStarSourceConnection' });
    const v = validationOverrides().source!;
    expect(action.Configuration).toMatchObject({ ConnectionArn: v.connectionArn, FullRepositoryId: v.repository, BranchName: 'main' });
  });

  test('synth installs Rust, cargo-lambda and Node deps, runs the test command, then cdk synth', () => {
    const synth = stage('Build').Actions[0];
    const spec = buildSpecOf(synth.Configuration.ProjectName.Ref);
    const order = ['sh.rustup.rs', '--component rustfmt,clippy', '--default-toolchain 1.95.0', 'cargo-lambda==1.9.2', 'npm ci', 'bash .ci/run', 'npx cdk synth', 'keygate-smoke'];
    let last = -1;
    for (const step of order) {
      const at = spec.indexOf(step);
      expect(at).toBeGreaterThan(last);
      last = at;
    }
    const artifacts = buildSpec(synth.Configuration.ProjectName.Ref).artifacts['secondary-artifacts'];
    expect(Object.values(artifacts).map((a: any) => a['base-directory']).sort()).toEqual(['cdk.out', 'smoke-bin']);
  });

  test('a manual approval before prod, and only before prod', () => {
    const approvals = (s: string) => stage(s).Actions.filter((a) => a.ActionTypeId.Category === 'Approval');
    expect(approvals('Dev')).toHaveLength(0);
    expect(approvals('Staging')).toHaveLength(0);
    const [approve] = approvals('Prod');
    expect(approve).toBeDefined();
    const deploys = stage('Prod').Actions.filter((a) => a.ActionTypeId.Provider === 'CloudFormation');
    expect(deploys.length).toBeGreaterThan(0);
    for (const d of deploys) {
      expect(d.RunOrder).toBeGreaterThan(approve.RunOrder);
    }
  });

  test.each(['Dev', 'Staging', 'Prod'])('%s: deploys keygate-<stage>, then runs keygate-smoke against its ApiUrl output', (name) => {
    const s = stage(name);
    const deploys = s.Actions.filter((a) => a.ActionTypeId.Provider === 'CloudFormation');
    expect(deploys.map((d) => d.Configuration.StackName)).toEqual(expect.arrayContaining([`keygate-${name.toLowerCase()}`]));
    const lastDeploy = Math.max(...deploys.map((d) => d.RunOrder));
    const smoke = s.Actions.find((a) => a.Name.startsWith('Smoke'));
    expect(smoke.ActionTypeId.Provider).toBe('CodeBuild');
    expect(smoke.RunOrder).toBeGreaterThan(lastDeploy);
    const env = JSON.parse(smoke.Configuration.EnvironmentVariables) as { name: string; value: string; type: string }[];
    expect(env).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'API_URL', value: expect.stringMatching(/^#\{.+\.ApiUrl\}$/) })]));
    const spec = buildSpecOf(smoke.Configuration.ProjectName.Ref);
    expect(spec.split('\n')).toContain('keygate-smoke --base-url "$API_URL" --email-domain simulator.amazonses.com');
    // The deploy action exports the stack outputs under the namespace the smoke step reads.
    const ns = /^#\{(.+)\.ApiUrl\}$/.exec(env.find((e) => e.name === 'API_URL')!.value)![1];
    expect(deploys.some((d) => d.Namespace === ns)).toBe(true);
  });

  test('stage accounts come from the settings (prod overridden, the others in the pipeline account)', () => {
    const roleOf = (name: string) => JSON.stringify(stage(name).Actions.find((a) => a.ActionTypeId.Provider === 'CloudFormation').RoleArn);
    expect(roleOf('Dev')).toContain('111111111111');
    expect(roleOf('Staging')).toContain('111111111111');
    expect(roleOf('Prod')).toContain('333333333333');
    expect(roleOf('Prod')).toContain('us-east-1');
  });

  test('deploy action role ARNs are plain strings or Fn::Sub (cfn-lint E3703)', () => {
    for (const s of stages) {
      for (const a of s.Actions) {
        const role = a.Configuration?.RoleArn;
        if (role !== undefined) {
          expect(typeof role === 'string' || 'Fn::Sub' in role).toBe(true);
        }
      }
    }
  });

  test('cross-account keys: artifacts encrypted with a rotating KMS key', () => {
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    expect(JSON.stringify(pipeline.ArtifactStore ?? pipeline.ArtifactStores)).toContain('EncryptionKey');
  });

  test('no Docker anywhere: no CodeBuild project runs privileged', () => {
    for (const p of Object.values(projects)) {
      expect(p.Properties!.Environment.PrivilegedMode).toBe(false);
    }
  });

  test('the self-mutating pipeline pins the CDK CLI', () => {
    // Asset publishing keeps its buildspec in a file of the assembly; the inline ones are checked here.
    const inline = Object.keys(projects).filter((id) => (projects[id].Properties!.Source.BuildSpec as string).startsWith('{'));
    const selfMutation = inline.map(buildSpecOf).find((spec) => spec.includes('cdk -a .'));
    expect(selfMutation).toContain('npm install -g aws-cdk@2.1148.1');
  });

  test('the pipeline stack is absent without a configured source', () => {
    const app = newApp();
    expect(buildApp(app, { stages: ['dev'] }).pipeline).toBeUndefined();
  });

  test('synth uses a large build container with a long enough timeout', () => {
    template.hasResourceProperties('AWS::CodeBuild::Project', {
      Environment: Match.objectLike({ ComputeType: 'BUILD_GENERAL1_LARGE', Image: 'aws/codebuild/standard:7.0' }),
      TimeoutInMinutes: 90,
    });
  });
});
