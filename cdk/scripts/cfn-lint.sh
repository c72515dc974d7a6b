#!/usr/bin/env bash
# cfn-lint (the project venv's pinned 1.58.0) over every template in a cloud assembly
# (default cdk.out, nested stage assemblies included). Fails on any error; warnings are printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-cdk.out}"
CFN_LINT_VERSION=1.58.0
lint=".venv/bin/cfn-lint"
if [ ! -x "$lint" ] || [ "$("$lint" --version 2>/dev/null | awk '{print $2}')" != "$CFN_LINT_VERSION" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet "cfn-lint==$CFN_LINT_VERSION"
fi
mapfile -t templates < <(find "$out" -name '*.template.json' | sort)
if [ "${#templates[@]}" -eq 0 ]; then
  echo "cfn-lint: no templates under $out (run npm run synth:all first)" >&2
  exit 1
fi
set +e
"$lint" --format parseable --non-zero-exit-code error -- "${templates[@]}" > "$out/cfn-lint.txt"
rc=$?
set -e
cat "$out/cfn-lint.txt"
errors=$(grep -c ':E[0-9]' "$out/cfn-lint.txt" || true)
warnings=$(grep -c ':W[0-9]' "$out/cfn-lint.txt" || true)
echo "cfn-lint: ${#templates[@]} templates, $errors errors, $warnings warnings"
exit $rc
