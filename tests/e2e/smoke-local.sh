#!/usr/bin/env bash
# Starts keygate-local on a free port with a fresh data folder, runs keygate-smoke against it, stops it.
#   tests/e2e/smoke-local.sh PATH/TO/keygate-local PATH/TO/keygate-smoke
set -euo pipefail
local_bin="$1"
smoke_bin="$2"
data="$(mktemp -d)"
out="$data/stdout"
"$local_bin" --addr 127.0.0.1:0 --data-dir "$data" >"$out" 2>"$data/stderr" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^listening on //p' "$out")"
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$data/stderr" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "keygate-local did not start" >&2; exit 1; }
# The file mailer (the default) writes under the data folder: the smoke run reads its mails there.
"$smoke_bin" --base-url "$url" --outbox "$data/outbox"
