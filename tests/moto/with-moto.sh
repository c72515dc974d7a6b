#!/usr/bin/env bash
# Runs a command against a moto server started for it, then stops the server, whatever the command did.
#
#   tests/moto/with-moto.sh cargo test -p keygate-aws
#
# Starts `moto_server` from the project virtualenv (.venv; see setup-venv.sh) on a free loopback port and
# exports, for the command only:
#   AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL_SESV2   http://127.0.0.1:<port>
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (dummies), AWS_REGION, AWS_DEFAULT_REGION (us-east-1)
#   AWS_EC2_METADATA_DISABLED=true, AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE=/dev/null (no profile
#   or instance credentials can leak in)
# The command's exit status is this script's. Moto's log goes to $MOTO_LOG (default: a temp file,
# printed when the command fails).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi
moto="$root/.venv/bin/moto_server"
if [ ! -x "$moto" ]; then
    echo "moto_server not found in $root/.venv: run tests/moto/setup-venv.sh first" >&2
    exit 2
fi
py="$root/.venv/bin/python"
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
log="${MOTO_LOG:-$(mktemp -t moto.XXXXXX.log)}"
# serve.py: moto with each request applied atomically (see there why).
"$py" "$root/tests/moto/serve.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
stop() {
    if kill -0 "$moto_pid" 2>/dev/null; then
        kill "$moto_pid" 2>/dev/null || true
        wait "$moto_pid" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 130' INT TERM
# Ready when its management API answers (at most ~30 s).
if ! "$py" - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1).read()
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
then
    echo "moto_server did not start on 127.0.0.1:$port; its log:" >&2
    cat "$log" >&2
    exit 1
fi
endpoint="http://127.0.0.1:$port"
echo "moto_server 5.2.5 on $endpoint (pid $moto_pid, log $log)" >&2
status=0
env -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    AWS_ENDPOINT_URL_DYNAMODB="$endpoint" AWS_ENDPOINT_URL_SECRETS_MANAGER="$endpoint" \
    AWS_ENDPOINT_URL_SESV2="$endpoint" \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$@" || status=$?
if [ -z "${MOTO_LOG:-}" ]; then
    if [ "$status" -ne 0 ]; then
        echo "--- last lines of the moto log ($log) ---" >&2
        tail -n 40 "$log" >&2
    fi
    rm -f "$log"
fi
exit "$status"
