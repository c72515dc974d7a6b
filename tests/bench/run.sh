#!/usr/bin/env bash
# keygate's cold-start benchmark, one command: builds every Lambda function and the two Rust
# floors with `cargo lambda build --release`, bundles the Node.js baseline, builds the harness, then runs
# it (moto server, seeding, interleaved cold starts) and writes tests/bench/results.{json,md} and
# tests/bench/chart.svg. The SDK floor's tuning variants are always included; extra arguments go to
# `keygate-bench run` (e.g. --runs 10 --warm 10, or --variant LABEL=KIND:PATH[:KEY=VALUE] for another build).
# Details: docs/benchmarks.md. Not part of CI: it takes several minutes and needs an idle machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
venv="$root/.venv"

# Tools: moto's server (the AWS tests' own pinned setup) and cargo-lambda (brings zig), in the project venv.
bash tests/moto/setup-venv.sh
if ! "$venv/bin/cargo-lambda" --version 2>/dev/null | grep -q '1\.9\.2'; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2'
fi
export PATH="$venv/bin:$PATH"

# The function binary (every keygate function, picked by KEYGATE_FUNCTION) and the floors, with the
# workspace's release profile.
packages=(-p keygate-functions -p floor-hello -p floor-sdk)
echo "building ${packages[*]}" >&2
cargo lambda build --release "${packages[@]}"

# The Node.js baseline: pinned dependencies, esbuild bundle (node20, minified).
if ! command -v node >/dev/null; then
  echo "node (>= 20) is needed for the Node.js baseline" >&2
  exit 1
fi
(cd tests/bench/node-refresh && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)

# The harness itself (release, so its own overhead stays out of the figures).
cargo build --release -p keygate-bench
# The tuning variants of the SDK floor (its switches, see handlers/tools/floor-sdk), interleaved with the rest.
floor="$CARGO_TARGET_DIR/lambda/floor-sdk"
tuning=(
  --variant "floor-sdk system trust store=floor-sdk:$floor:FLOOR_SDK_CONFIG=default"
  --variant "floor-sdk multi_thread=floor-sdk:$floor:FLOOR_TOKIO_FLAVOR=multi_thread"
  --variant "floor-sdk no init warm-up=floor-sdk:$floor:FLOOR_SDK_WARMUP=0"
  --variant "floor-sdk two key reads=floor-sdk:$floor:FLOOR_SDK_KEY_READS=2"
)
# moto is started by the AWS tests' wrapper, which exports AWS_ENDPOINT_URL_DYNAMODB for the harness.
bash tests/moto/with-moto.sh "$CARGO_TARGET_DIR/release/keygate-bench" run --venv "$venv" "${tuning[@]}" "$@"
