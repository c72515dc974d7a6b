#!/usr/bin/env bash
# Creates the project virtualenv (.venv at the repository root) if absent and installs the pinned moto
# server into it. Idempotent: pip leaves a satisfied pin alone.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ ! -x "$root/.venv/bin/python" ]; then
    python3 -m venv "$root/.venv"
fi
"$root/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/moto/requirements.txt"
