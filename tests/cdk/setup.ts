/**
 * Every App built in the tests gets the feature flags of cdk.json (as `cdk synth` would) and
 * skips Rust bundling (`aws:cdk:bundling-stacks` = []): the tests check templates, not binaries.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const cdkJson = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
process.env.CDK_CONTEXT_JSON = JSON.stringify({ ...cdkJson.context, 'aws:cdk:bundling-stacks': [] });
