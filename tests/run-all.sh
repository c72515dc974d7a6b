#!/usr/bin/env bash
# The one command that runs every test of keygate on a fresh machine. It installs what it needs
# (pinned): Python tools into .venv, Node packages with `npm ci`; Rust comes from the machine
# (the release rust-toolchain.toml names).
#
#   bash tests/run-all.sh
#
# Steps: formatting and lints (rustfmt, clippy, tsc, the schema of .github/workflows/ci.yml); the Rust
# tests (unit, in-process HTTP, the store behaviour suite on SQLite and on DynamoDB through moto, Secrets
# Manager rotation, end-to-end tests of keygate-local); third-party JWT libraries verifying keygate's
# tokens; standard OAuth clients (Authlib, oauth4webapi) refreshing and revoking through the advertised
# endpoints; email verification and password reset against an SMTP sink (aiosmtpd); TOTP second
# factors with pyotp as the authenticator app; the smoke tool against a local server; the OpenAPI document validated
# (openapi-spec-validator) and fuzzed against a local server (schemathesis); the CDK tests (jest); a
# real `cdk synth` of every stage
# and the pipeline with the Rust functions built by cargo-lambda and cdk-nag enforced; every function of
# that binary under a local Lambda Runtime API against moto; cfn-lint on every synthesised template.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR=never
target="${CARGO_TARGET_DIR:-$root/target}"
started=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }

# rust-toolchain.toml pins the Rust release. A rustup that holds that release only as `stable` (this
# project's machines carry one toolchain and cannot download another) runs it under that name.
pinned=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
if command -v rustup >/dev/null && ! rustup toolchain list | grep "^$pinned-" >/dev/null &&
  [ "$(rustup run stable rustc --version 2>/dev/null | cut -d' ' -f2)" = "$pinned" ]; then
  export RUSTUP_TOOLCHAIN=stable
fi

step "python tools into .venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
export PATH="$root/.venv/bin:$PATH"

step "node packages"
npm ci --no-audit --no-fund --loglevel=error

step "rustfmt, clippy, tsc, the hosted CI workflow against its schema"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
npm run --silent typecheck
# The local server runs the adapters without the Lambda runtime (handlers/lambda holds the shell).
if cargo tree --locked -p keygate-local -e normal --prefix none | grep -E '^lambda_(runtime|http) '; then
  echo "keygate-local depends on the Lambda runtime (above); only handlers/lambda may" >&2
  exit 1
fi

step "rust tests (moto serves DynamoDB and Secrets Manager)"
# The smoke tool's end-to-end test uses this binary instead of building its own.
export KEYGATE_LOCAL_BIN="$target/debug/keygate-local"
cargo build --locked -p keygate-local
bash tests/moto/with-moto.sh cargo test --workspace --locked

step "third-party JWT libraries verify keygate's tokens through the JWKS"
python tests/e2e/third_party_jwt.py "$target/debug/keygate-local"

step "standard OAuth clients (Authlib, oauth4webapi): discovery, refresh, revocation"
python tests/e2e/oauth_authlib.py "$target/debug/keygate-local"
node tests/e2e/oauth-oauth4webapi.mjs "$target/debug/keygate-local"

step "email verification and password reset through SMTP (aiosmtpd), as a user and an attacker would"
python tests/e2e/email_smtp.py "$target/debug/keygate-local"

step "TOTP second factors with pyotp as the authenticator app: enrolment, the login's second step, replay, races, the attempt cap, secrets at rest"
python tests/e2e/mfa_totp.py "$target/debug/keygate-local"

step "keygate-smoke against a local server on a free port"
cargo build --locked -p keygate-smoke
bash tests/e2e/smoke-local.sh "$target/debug/keygate-local" "$target/debug/keygate-smoke"

step "the OpenAPI document: openapi-spec-validator, then schemathesis against a local server"
openapi-spec-validator handlers/http/openapi.json
bash tests/e2e/schemathesis-local.sh "$target/debug/keygate-local"

step "CDK tests (jest)"
npm test --silent

step "cdk synth of every stage and the pipeline, Rust bundled by cargo-lambda, cdk-nag enforced"
npm run --silent synth:all

step "every function of the bundled binary as Lambda runs it (a local Runtime API), against moto"
# The synth above built it (cargo-lambda, release, x86_64) into each stage's function asset.
bootstrap=$(find cdk.out -path '*asset.*' -name bootstrap -type f | head -n 1)
if [ -z "$bootstrap" ]; then
  echo "no function bootstrap in cdk.out after the synth" >&2
  exit 1
fi
bash tests/moto/with-moto.sh python tests/moto/lambda_e2e.py --bootstrap "$bootstrap"

step "cfn-lint on every template"
npm run --silent lint:cfn

step "all tests passed"
