#!/usr/bin/env python3
"""Every built Lambda function, as Lambda runs it, against moto.

    tests/moto/with-moto.sh .venv/bin/python tests/moto/lambda_e2e.py [--lambda-dir target/lambda | --bootstrap FILE]

Needs `cargo lambda build --release -p keygate-functions` first (target/lambda/keygate-functions/bootstrap,
the one binary every function runs, told which by KEYGATE_FUNCTION), or --bootstrap naming that binary
elsewhere (tests/run-all.sh passes the one `cdk synth` bundled into cdk.out). Each function runs under
the local Runtime API of lambda_runtime_api.py and gets API Gateway REST (v1) proxy events for stage
`dev`; DynamoDB and Secrets Manager are moto's (the environment of with-moto.sh). Checks: a configuration
error (a bad value, or an unknown KEYGATE_FUNCTION) is an init error naming the variable, and so is a
secret init cannot read (the functions read theirs in one BatchGetSecretValue); a secret without a key
set answers 503 problem+json; the rotate-keys function's four steps; the account lifecycle through
register, login, refresh, me, change-password, logout and logout-all, a TOTP enrolment through
account-mfa (three secrets at init), the key documents; EMF metrics and JSON logs on stdout. Ends with
the line `N passed, N failed` and a non-zero status on failure. The users skip email verification
(KEYGATE_REQUIRE_VERIFIED_EMAIL=false): the mail flows are tested with an SMTP sink in
tests/e2e/email_smtp.py and on DynamoDB in handlers/aws/tests/moto.rs.
"""

import argparse
import json
import os
import sys
import tempfile
import uuid

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lambda_runtime_api import invoke  # noqa: E402

STAGE = "dev"
HOST = "abc123.execute-api.us-east-1.amazonaws.com"
PASSWORD = "amber-lantern-orbit-7421"
NEW_PASSWORD = "quiet-meadow-falcon-3958"


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")
        return ok


def rest_event(method, path, body=None, bearer=None):
    headers = {"Host": HOST, "X-Correlation-Id": "e2e-" + uuid.uuid4().hex[:8]}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "r1",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.7"},
            "resourcePath": path,
            "httpMethod": method,
            "apiId": "abc123",
            "path": f"/{STAGE}{path}",
            "protocol": "HTTP/1.1",
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


# The one binary and the variable that picks the function: cdk/contract.json, generated from the Rust code.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cdk", "contract.json")) as f:
    CONTRACT = json.load(f)
FUNCTION_VARIABLE = next(s["env"] for s in CONTRACT["settings"] if s["flag"] == "function")
FUNCTION_NAMES = [f["name"] for f in CONTRACT["functions"]]


def bootstrap_in(lambda_dir):
    return os.path.join(lambda_dir, CONTRACT["binary"], "bootstrap")


class Functions:
    def __init__(self, bootstrap, env, log_dir):
        self.bootstrap = bootstrap
        self.env = env
        self.log_dir = log_dir
        self.init_ms = {}

    def log_path(self, name):
        return os.path.join(self.log_dir, f"{name}.log")

    def run(self, name, events, env=None):
        env = {**self.env, FUNCTION_VARIABLE: name, **(env or {})}
        outcome = invoke(self.bootstrap, events, env, timeout=60, log_path=self.log_path(name))
        if outcome["init_ms"] is not None:
            self.init_ms.setdefault(name, outcome["init_ms"])
        return outcome

    def http(self, name, method, path, body=None, bearer=None):
        outcome = self.run(name, [rest_event(method, path, body, bearer)])
        if not outcome["results"]:
            return None, None, {}, outcome
        response = outcome["results"][0]["body"]
        if not isinstance(response, dict) or "statusCode" not in response:
            return None, None, {}, outcome
        raw = response.get("body") or ""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        # REST (v1) responses carry their headers in multiValueHeaders.
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            if values:
                headers.setdefault(name.lower(), values[0])
        return response["statusCode"], parsed, headers, outcome


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--lambda-dir", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target")), "lambda"))
    parser.add_argument("--bootstrap", help="the binary itself (a cdk.out asset's bootstrap), instead of the one under --lambda-dir")
    args = parser.parse_args()
    bootstrap = os.path.abspath(args.bootstrap) if args.bootstrap else bootstrap_in(args.lambda_dir)
    for var in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        if not os.environ.get(var):
            print(f"{var} is not set: run through tests/moto/with-moto.sh", file=sys.stderr)
            return 2

    ddb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    sm = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"])
    table = "keygate-e2e-" + uuid.uuid4().hex[:8]
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "userId")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "byUserId",
            "KeySchema": [{"AttributeName": "userId", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }],
    )
    # What CDK creates before the first rotation: a random string, not a key set.
    secret_arn = sm.create_secret(Name="keygate-e2e-keys-" + uuid.uuid4().hex[:8], SecretString=uuid.uuid4().hex + "!#A")["ARN"]
    public_arn = sm.create_secret(Name="keygate-e2e-public-keys-" + uuid.uuid4().hex[:8], SecretString=uuid.uuid4().hex + "!#A")["ARN"]
    # What CDK generates: 64 hex digits (the HMAC key of audit email hashes).
    server_key_arn = sm.create_secret(Name="keygate-e2e-server-key-" + uuid.uuid4().hex[:8], SecretString=os.urandom(32).hex())["ARN"]
    # What CDK generates from the template {"current": "k1"}: a key id named current and its material.
    factor_keys_arn = sm.create_secret(Name="keygate-e2e-factor-keys-" + uuid.uuid4().hex[:8],
                                       SecretString=json.dumps({"current": "k1", "k1": os.urandom(32).hex()}))["ARN"]

    env = {
        "KEYGATE_TABLE_NAME": table,
        "KEYGATE_KEYS_SECRET_ID": secret_arn,
        "KEYGATE_PUBLIC_KEYS_SECRET_ID": public_arn,
        "KEYGATE_SERVER_KEY_SECRET_ID": server_key_arn,
        "KEYGATE_FACTOR_KEYS_SECRET_ID": factor_keys_arn,
        "KEYGATE_REQUIRE_VERIFIED_EMAIL": "false",
        "KEYGATE_ISSUER": f"https://{HOST}/{STAGE}",
        "KEYGATE_AUDIENCE": "keygate",
        "KEYGATE_METRICS_NAMESPACE": f"Keygate/{STAGE}",
        "KEYGATE_SIGNING_ALG": "ES256",
        "RUST_LOG": "info",
    }
    log_dir = tempfile.mkdtemp(prefix="keygate-lambda-e2e-")
    fns = Functions(bootstrap, env, log_dir)
    c = Checks()

    if not os.path.exists(bootstrap):
        print(f"missing {bootstrap} (run cargo lambda build --release -p {CONTRACT['binary']})", file=sys.stderr)
        return 2

    # A binary told no function, or one that does not exist, names the variable and the functions.
    outcome = fns.run("no-such-function", [rest_event("POST", "/auth/register", {})])
    error = outcome["init_error"] or {}
    c.check("unknown KEYGATE_FUNCTION -> /runtime/init/error listing the functions",
            FUNCTION_VARIABLE in str(error.get("errorMessage")) and all(n in str(error.get("errorMessage")) for n in FUNCTION_NAMES)
            and outcome["exit_code"] not in (0, None),
            json.dumps(outcome))

    # A configuration error is reported as an init error naming the variable, and the process exits non-zero.
    outcome = fns.run("register", [rest_event("POST", "/auth/register", {})], env={"KEYGATE_ACCESS_TOKEN_TTL_SECONDS": "3600"})
    error = outcome["init_error"] or {}
    c.check("config error -> /runtime/init/error naming the variable",
            "KEYGATE_ACCESS_TOKEN_TTL_SECONDS" in str(error.get("errorMessage")) and outcome["exit_code"] not in (0, None),
            json.dumps(outcome))

    # A secret init cannot read is an init error naming its setting (read with the others in one call).
    missing = server_key_arn + "-missing"
    outcome = fns.run("me", [rest_event("GET", "/auth/me")], env={"KEYGATE_SERVER_KEY_SECRET_ID": missing})
    error = outcome["init_error"] or {}
    c.check("an unreadable secret -> /runtime/init/error naming its variable",
            "KEYGATE_SERVER_KEY_SECRET_ID" in str(error.get("errorMessage")) and outcome["exit_code"] not in (0, None),
            json.dumps(outcome))

    # No key set yet: 503 problem+json, no crash.
    status, body, headers, outcome = fns.http("well-known", "GET", "/.well-known/jwks.json")
    c.check("jwks before the first rotation -> 503 problem+json",
            status == 503 and headers.get("content-type") == "application/problem+json", f"{status} {body} {outcome}")

    # The rotation function: the four steps, as Secrets Manager invokes them.
    token = str(uuid.uuid4())
    steps = [{"SecretId": secret_arn, "ClientRequestToken": token, "Step": s} for s in ("createSecret", "setSecret", "testSecret", "finishSecret")]
    outcome = fns.run("rotate-keys", steps + [steps[0], steps[3]])
    statuses = [r["status"] for r in outcome["results"]]
    c.check("rotate-keys: four steps (+ retried createSecret and finishSecret) succeed", statuses == ["response"] * 6, json.dumps(outcome))
    stages = sm.describe_secret(SecretId=secret_arn)["VersionIdsToStages"]
    c.check("rotate-keys: the token's version is AWSCURRENT, no AWSPENDING left",
            stages.get(token) == ["AWSCURRENT"] and not any("AWSPENDING" in v for v in stages.values()), str(stages))
    public_set = json.loads(sm.get_secret_value(SecretId=public_arn)["SecretString"])
    c.check("rotate-keys: the public key set holds the new key and no private member",
            len(public_set.get("keys", [])) == 1
            and not any(m in k.get("jwk", {}) or m in k for k in public_set["keys"] for m in ("d", "p", "q", "k", "private_key")),
            json.dumps(public_set)[:300])

    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    status, body, _, out = fns.http("register", "POST", "/auth/register", {"email": email, "password": PASSWORD})
    c.check("POST /auth/register -> 201", status == 201 and "user_id" in (body or {}), f"{status} {body} {out}")
    user_id = (body or {}).get("user_id")

    status, login, _, out = fns.http("login", "POST", "/auth/login", {"email": email, "password": PASSWORD})
    c.check("POST /auth/login -> 200 token response", status == 200 and (login or {}).get("token_type") == "Bearer", f"{status} {login} {out}")
    login = login or {}

    # account-mfa reads the signing keys, the server key and the TOTP data-key ring at init.
    status, factor, _, out = fns.http("account-mfa", "POST", "/auth/mfa/totp", {}, bearer=login.get("access_token"))
    c.check("POST /auth/mfa/totp -> 200 a pending factor", status == 200 and str((factor or {}).get("otpauth_uri", "")).startswith("otpauth://totp/"),
            f"{status} {factor} {out}")

    status, refreshed, _, out = fns.http("refresh", "POST", "/auth/refresh", {"refresh_token": login.get("refresh_token")})
    c.check("POST /auth/refresh -> 200", status == 200 and "access_token" in (refreshed or {}), f"{status} {refreshed}")
    refreshed = refreshed or {}

    status, replay, _, _ = fns.http("refresh", "POST", "/auth/refresh", {"refresh_token": login.get("refresh_token")})
    c.check("POST /auth/refresh replaying the parent -> 401", status == 401, f"{status} {replay}")

    status, me, _, _ = fns.http("me", "GET", "/auth/me", bearer=refreshed.get("access_token"))
    c.check("GET /auth/me -> 200 with the user", status == 200 and (me or {}).get("user_id") == user_id, f"{status} {me}")

    status, changed, _, _ = fns.http("change-password", "POST", "/auth/password",
                                     {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, bearer=refreshed.get("access_token"))
    c.check("POST /auth/password -> 200 fresh tokens", status == 200 and "refresh_token" in (changed or {}), f"{status} {changed}")
    changed = changed or {}

    status, body, _, _ = fns.http("logout", "POST", "/auth/logout", {"refresh_token": changed.get("refresh_token")})
    c.check("POST /auth/logout -> 204", status == 204, f"{status} {body}")

    status, again, _, _ = fns.http("login", "POST", "/auth/login", {"email": email, "password": NEW_PASSWORD})
    again = again or {}
    status_all, body, _, _ = fns.http("logout-all", "POST", "/auth/logout-all", bearer=again.get("access_token"))
    c.check("POST /auth/logout-all -> 204", status == 200 and status_all == 204, f"{status} {status_all} {body}")

    status, me, _, _ = fns.http("me", "GET", "/auth/me", bearer=again.get("access_token"))
    c.check("GET /auth/me after logout-all -> 401", status == 401, f"{status} {me}")

    status, jwks, _, _ = fns.http("well-known", "GET", "/.well-known/jwks.json")
    c.check("GET /.well-known/jwks.json -> 200 one ES256 key", status == 200 and [k.get("alg") for k in (jwks or {}).get("keys", [])] == ["ES256"], f"{status} {jwks}")

    status, discovery, _, _ = fns.http("well-known", "GET", "/.well-known/openid-configuration")
    c.check("GET /.well-known/openid-configuration -> 200", status == 200 and (discovery or {}).get("issuer") == env["KEYGATE_ISSUER"], f"{status} {discovery}")

    status, body, headers, _ = fns.http("register", "GET", "/auth/me")
    c.check("a route of another function -> 4xx problem+json", status is not None and 400 <= status < 500 and headers.get("content-type") == "application/problem+json", f"{status} {body}")

    # Observability: EMF document and JSON log lines with the Lambda request id.
    with open(fns.log_path("login")) as f:
        lines = [json.loads(line) for line in f if line.startswith("{")]
    emf = [line for line in lines if "_aws" in line]
    c.check("login: EMF metrics in namespace Keygate/dev with LoginSucceeded and RequestLatency",
            any(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == f"Keygate/{STAGE}" and "LoginSucceeded" in m and "RequestLatency" in m for m in emf),
            json.dumps(emf)[:600])
    logs = [line for line in lines if "_aws" not in line]
    c.check("login: JSON log lines carry the Lambda request id and the correlation id",
            any(line.get("span", {}).get("requestId") and line.get("correlation_id", "").startswith("e2e-") for line in logs),
            json.dumps(logs)[:600])
    with open(fns.log_path("login")) as f:
        text = f.read()
    c.check("login: no password or refresh token in the logs", PASSWORD not in text and NEW_PASSWORD not in text and login.get("refresh_token", "x") not in text)

    print("cold init (process start to first /next), ms: " + ", ".join(f"{k} {v}" for k, v in sorted(fns.init_ms.items())))
    print(f"logs: {log_dir}")
    print(f"{c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
