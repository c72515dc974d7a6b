import * as path from 'node:path';

/** Root of the repository (the Cargo workspace and the CDK app share it). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The workspace manifest every Rust function is built from. */
export const WORKSPACE_MANIFEST = path.join(REPO_ROOT, 'Cargo.toml');
