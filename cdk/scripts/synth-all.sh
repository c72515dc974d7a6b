#!/usr/bin/env bash
# A real `cdk synth` of every stage (and the pipeline) WITH Rust bundling: each function is built
# by cargo-lambda from the workspace. cargo-lambda comes from the project venv (.venv/bin); the
# cargo target directory is the workspace's own (or $CARGO_TARGET_DIR when set, which the
# bundling inherits), so functions already built by an earlier step are not rebuilt.
#
# When no pipeline source is configured (keygate:repository in cdk.json / cdk.context.json), the
# pipeline is synthesised with the validation identity in cdk/scripts/validation-context.json so
# that its template is checked too.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_LAMBDA_VERSION=1.9.2
if [ ! -x .venv/bin/cargo-lambda ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
export PATH="$PWD/.venv/bin:$HOME/.cargo/bin:$PATH"
cargo lambda --version

context_args=()
if ! node -e '
  const fs = require("fs");
  const ctx = {};
  for (const f of ["cdk.json", "cdk.context.json"]) {
    if (fs.existsSync(f)) Object.assign(ctx, f === "cdk.json" ? JSON.parse(fs.readFileSync(f, "utf8")).context : JSON.parse(fs.readFileSync(f, "utf8")));
  }
  process.exit(ctx["keygate:repository"] ? 0 : 1);
'; then
  while IFS= read -r kv; do context_args+=(-c "$kv"); done < <(node -e '
    const v = require("./cdk/scripts/validation-context.json");
    for (const [k, x] of Object.entries(v)) if (!k.startsWith("//")) console.log(`${k}=${x}`);
  ')
fi

rm -rf cdk.out
start=$(date +%s)
npx cdk synth --quiet "${context_args[@]}"
echo "synth:all: $(find cdk.out -name '*.template.json' | wc -l) templates, $(find cdk.out -maxdepth 1 -type d -name 'asset.*' | wc -l) assets in $(( $(date +%s) - start )) s"
