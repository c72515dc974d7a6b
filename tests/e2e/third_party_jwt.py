"""Verifies keygate's access tokens with widely used third-party JWT libraries, through the JWKS only.

Starts `keygate-local` once per public algorithm (ES256, RS256, EdDSA) on a free port, registers and
logs in over HTTP, then verifies the access token with PyJWT (Python) and jose (Node.js), each fetching
the JWKS from the discovery document like any relying party would. Exits non-zero on the first failure.

usage: python third_party_jwt.py PATH/TO/keygate-local
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile
import urllib.request

import jwt  # PyJWT

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outbox import verify  # noqa: E402  (the verification mail in keygate-local's file outbox)

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_VERIFIER = os.path.join(HERE, "verify-jwt.mjs")


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def start(binary, data_dir, alg):
    process = subprocess.Popen(
        [binary, "--addr", "127.0.0.1:0", "--data-dir", data_dir, "--signing-alg", alg],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("listening on "):
            return process, line.removeprefix("listening on ").strip()
    raise SystemExit(f"keygate-local ({alg}) exited before listening")


def check(alg, binary):
    with tempfile.TemporaryDirectory() as data_dir:
        process, base = start(binary, data_dir, alg)
        try:
            email = f"jwt-{secrets.token_hex(4)}@example.com"
            password = "third party verification " + secrets.token_hex(8)
            user_id = call("POST", f"{base}/auth/register", {"email": email, "password": password})["user_id"]
            verify(base, data_dir, email)  # the mailed link, as the user would (logins need it)
            token = call("POST", f"{base}/auth/login", {"email": email, "password": password})["access_token"]
            discovery = call("GET", f"{base}/.well-known/openid-configuration")

            # PyJWT: key chosen by kid from the JWKS, algorithm pinned to what discovery advertises.
            keys = jwt.PyJWKClient(discovery["jwks_uri"])
            signing_key = keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=discovery["access_token_signing_alg_values_supported"],
                audience="keygate",
                issuer=discovery["issuer"],
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
            )
            header = jwt.get_unverified_header(token)
            assert header["typ"] == "at+jwt", header
            assert claims["sub"] == user_id, claims
            assert "email" not in claims and email not in json.dumps(claims), "the email never enters a token"
            # A token with one flipped signature character must fail.
            tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
            try:
                jwt.decode(tampered, signing_key.key, algorithms=[alg], audience="keygate", issuer=discovery["issuer"])
                raise SystemExit(f"PyJWT accepted a tampered {alg} token")
            except jwt.InvalidTokenError:
                pass
            print(f"ok   PyJWT {jwt.__version__} verified a {alg} token through the JWKS")

            node = subprocess.run(
                ["node", NODE_VERIFIER, discovery["jwks_uri"], discovery["issuer"], "keygate", user_id, alg, token],
                capture_output=True,
                text=True,
                timeout=60,
            )
            sys.stdout.write(node.stdout)
            if node.returncode != 0:
                raise SystemExit(f"jose rejected the {alg} token: {node.stderr.strip()}")
        finally:
            process.terminate()
            process.wait(timeout=10)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for alg in ["ES256", "RS256", "EdDSA"]:
        check(alg, sys.argv[1])
    print("3 passed, 0 failed")


if __name__ == "__main__":
    main()
