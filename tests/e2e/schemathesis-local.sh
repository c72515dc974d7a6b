#!/usr/bin/env bash
# Fuzzes keygate-local with the OpenAPI document it serves (handlers/http/openapi.json): schemathesis
# sends generated valid and invalid requests to every operation and fails on a 5xx, a status, content
# type, header or body the document does not describe. 0 failures is the only passing result.
#   tests/e2e/schemathesis-local.sh PATH/TO/keygate-local
# Everything it writes (the server's data, schemathesis' report) stays in a temporary folder.
set -euo pipefail
local_bin="$(realpath "$1")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
schemathesis="$(command -v schemathesis)" ||
  { echo "schemathesis is not on PATH: install tests/requirements.txt (tests/run-all.sh does)" >&2; exit 1; }
work="$(mktemp -d)"
out="$work/stdout"
# argon2id at the lowest cost the settings accept (OWASP's first configuration, the lower bounds in
# handlers/core/src/config.rs; today also the defaults), stated so a raised default does not slow
# this run: about 20 ms of one core per register, login and password change, of which the run makes
# several hundred. The hashing gate admits 5 requests per core (handlers/local/src/server.rs); one
# schemathesis worker (below) never fills it, so no 503 `busy` (which not_a_server_error would count)
# comes from the fuzzer's own concurrency.
"$local_bin" --addr 127.0.0.1:0 --data-dir "$work/data" \
  --argon2-memory-kib 19456 --argon2-iterations 2 --argon2-parallelism 1 >"$out" 2>"$work/stderr" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^listening on //p' "$out")"
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/stderr" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "keygate-local did not start" >&2; exit 1; }

# The served document, fetched into a file: loaded from its URL, schemathesis leaves out the operation
# at that URL (GET /openapi.json itself), and the file must name this server.
curl -sf "$url/openapi.json" -o "$work/openapi.json"
grep -q "\"url\":\"$url\"" "$work/openapi.json" || { echo "the served document does not name $url" >&2; exit 1; }

# cd: schemathesis and hypothesis write nothing into the repository, whatever their defaults.
cd "$work"
# fuzz NAME SCHEMATHESIS-OPTIONS...: one run, whose bearer routes use the access token of a user NAME
# registered for it (schemathesis logs in through /auth/login, schemathesis.toml below).
fuzz() {
  local name="$1"
  shift
  local email="$name@example.com" password="schemathesis $name $(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  curl -sf -X POST "$url/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}" >/dev/null
  # Logins need a verified email: the mailed link, from the file outbox (tests/e2e/outbox.py).
  python "$here/outbox.py" verify "$url" "$work/data" "$email"
  cat >"$work/$name.toml" <<TOML
[auth.dynamic.openapi.bearerAuth]
path = "/auth/login"
payload = { email = "$email", password = "$password" }
extract_selector = "/access_token"
TOML
  "$schemathesis" --config-file "$work/$name.toml" run "$work/openapi.json" \
    `# the base URL the document names; required for a document read from a file` \
    --url "$url" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    `# a fixed seed: the same requests on every run, so a failure reproduces` \
    --seed 20261203 \
    `# the example budget per operation and phase: about 5,000 requests, a minute or two on 2 cores` \
    --max-examples 200 \
    `# one request at a time (see the hashing gate above)` \
    --workers 1 \
    `# no example database: nothing carries over between runs (.hypothesis stays unwritten)` \
    --generation-database none \
    --report junit,har --report-dir "${SCHEMATHESIS_REPORT_DIR:-$work/report}/$name" \
    --no-color \
    "$@"
}
# Every operation but logout-all: /auth/me and /auth/password see a valid token as well as none and
# invalid ones. The wrong current passwords /auth/password is sent throttle this user's logins, so
# the run must end before schemathesis logs in again (its default token lifetime, 300 s).
fuzz everything --exclude-operation-id logout_all \
  --exclude-operation-id mfa_totp --exclude-operation-id mfa_totp_activate \
  --exclude-operation-id mfa_recovery_codes --exclude-operation-id mfa_totp_disable
# The bearer routes of /auth/mfa, with a user of their own: its logins are never throttled by the
# wrong passwords above, so schemathesis can log in again whenever it wants a fresh token. (The
# fuzzer cannot activate a factor, so its wrong codes meet no active factor and count nothing.)
fuzz mfa --include-operation-id mfa_totp --include-operation-id mfa_totp_activate \
  --include-operation-id mfa_recovery_codes --include-operation-id mfa_totp_disable
# logout-all, with a user of its own: a call revokes every token of the user (204), later ones are
# refused (401) until schemathesis logs in again. No stateful phase: no link leads to logout-all.
fuzz logout-all --include-operation-id logout_all --phases examples,coverage,fuzzing
