"""TOTP second factors against keygate-local, with pyotp as the authenticator app.

Starts keygate-local on a free port with a fresh data folder, then checks:
- enrolment answers a base32 secret and an otpauth:// URI that pyotp reads back (issuer, account,
  6 digits, 30 s); activation with pyotp's code answers 10 recovery codes and a session whose `amr`
  is ["pwd", "otp"], and ends the session that enrolled;
- a right password answers 403 problem+json `mfa-required` with `mfa_token`, `expires_in` and
  `factors`; a wrong one the plain 401; verification issues tokens (`amr` with otp, a device token),
  `/auth/me` says `mfa_enabled`, and a refresh keeps the `amr`;
- the same code twice is refused; one code on two challenges at once (a barrier): exactly one wins;
- eight wrong codes at once on one challenge: the challenge is dead, even for a right code (checked
  after the login throttle's window has passed);
- a used `mfa_token` and a used recovery code are refused;
- the data folder (the SQLite database and everything beside it) holds neither the secret (raw,
  hex or base32) nor any recovery code in clear, and neither do the server's logs;
- disabling needs a code (a body without one is 400, a wrong one 401); with one it is 204, and the
  next login needs the password only.
Prints each check and "N/N checks passed"; exits non-zero on the first failure.

usage: python mfa_totp.py PATH/TO/keygate-local
"""

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote

import pyotp
import requests

PASSWORD = "correct horse battery staple"
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise SystemExit(f"FAIL {what}")
    checks += 1
    print(f"ok   {what}")


def claims(access_token):
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def main(binary):
    with tempfile.TemporaryDirectory() as root:
        data_dir = os.path.join(root, "data")
        log_path = os.path.join(root, "server.log")
        env = dict(os.environ, KEYGATE_REQUIRE_VERIFIED_EMAIL="false", KEYGATE_MFA_ISSUER="keygate e2e", RUST_LOG="debug")
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [binary, "--addr", "127.0.0.1:0", "--data-dir", data_dir],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
            try:
                base = None
                for line in process.stdout:
                    if line.startswith("listening on "):
                        base = line.removeprefix("listening on ").strip()
                        break
                if base is None:
                    raise SystemExit("keygate-local exited before listening")
                secrets_seen = run(base)
            finally:
                process.terminate()
                process.wait(timeout=30)
        stored = b""
        for folder, _, files in os.walk(data_dir):
            for name in files:
                with open(os.path.join(folder, name), "rb") as f:
                    stored += f.read()
        with open(log_path, "rb") as log:
            logs = log.read()
    in_clear = [s for s in secrets_seen if s.encode() in stored or s.upper().encode() in stored]
    check(not in_clear, f"the data folder ({len(stored)} bytes) holds none of the {len(secrets_seen)} secrets and recovery codes in clear")
    leaked = [s for s in secrets_seen if s.encode() in logs]
    check(not leaked, "no secret, recovery code or mfa_token appears in the server's logs")
    print(f"{checks}/{checks} checks passed")


def run(base):
    http = requests.Session()
    post = lambda path, body, bearer=None: http.post(  # noqa: E731
        f"{base}{path}", json=body, timeout=30, headers={"authorization": f"Bearer {bearer}"} if bearer else {}
    )
    seen = []

    def mfa_user(tag):
        email = f"{tag}-{secrets.token_hex(4)}@example.com"
        check(post("/auth/register", {"email": email, "password": PASSWORD}).status_code == 201, f"{tag} registers")
        session = post("/auth/login", {"email": email, "password": PASSWORD}).json()
        enrolled = post("/auth/mfa/totp", {}, session["access_token"])
        check(enrolled.status_code == 200, "enrolment answers 200")
        body = enrolled.json()
        totp = pyotp.parse_uri(body["otpauth_uri"])
        check(
            totp.secret == body["secret"] and len(base64.b32decode(body["secret"])) == 20 and totp.digits == 6 and totp.interval == 30
            and totp.issuer == "keygate e2e" and totp.name == email
            and body["otpauth_uri"].startswith(f"otpauth://totp/{quote('keygate e2e')}:"),
            "pyotp reads the key URI: the 160-bit secret, 6 digits, 30 s, issuer and account",
        )
        raw = base64.b32decode(body["secret"])
        seen.extend([body["secret"], body["secret"].lower(), raw.hex()])
        activated = post("/auth/mfa/totp/activate", {"factor_id": body["factor_id"], "code": totp.now()}, session["access_token"])
        check(activated.status_code == 200, "activation with pyotp's code answers 200")
        return email, totp, session, activated.json()

    ada, totp, first, activated = mfa_user("ada")
    codes = activated["recovery_codes"]
    seen.extend(codes + [c.replace("-", "") for c in codes])
    check(len(codes) == 10 and len(set(codes)) == 10, "activation shows 10 distinct recovery codes")
    check(claims(activated["access_token"])["amr"] == ["pwd", "otp"] and activated.get("device_token"), "the new session's amr is [pwd, otp], with a device token")
    check(post("/auth/refresh", {"refresh_token": first["refresh_token"]}).status_code == 401, "activation ended the session that enrolled")

    wrong = post("/auth/login", {"email": ada, "password": "not the password at all"})
    check(wrong.status_code == 401 and wrong.json()["type"] == "urn:keygate:problem:invalid-credentials", "a wrong password is the plain 401")
    challenged = post("/auth/login", {"email": ada, "password": PASSWORD})
    problem = challenged.json()
    check(
        challenged.status_code == 403 and challenged.headers["content-type"] == "application/problem+json"
        and problem["type"] == "urn:keygate:problem:mfa-required" and problem["mfa_token"].startswith("kgmt_")
        and problem["expires_in"] == 300 and problem["factors"] == ["totp", "recovery_code"]
        and "access_token" not in problem and "refresh_token" not in problem,
        "the right password answers 403 mfa-required with mfa_token, expires_in and factors, and no tokens",
    )
    seen.append(problem["mfa_token"])
    # The activation spent this step; pyotp's code for the next one is inside the skew.
    ahead = totp.at(time.time() + 30)
    verified = post("/auth/mfa/verify", {"mfa_token": problem["mfa_token"], "code": ahead})
    check(verified.status_code == 200 and verified.json().get("device_token"), "verification answers the token response with a device token")
    session = verified.json()
    check(claims(session["access_token"])["amr"] == ["pwd", "otp"], "its access token's amr is [pwd, otp]")
    me = http.get(f"{base}/auth/me", headers={"authorization": f"Bearer {session['access_token']}"}, timeout=30).json()
    check(me["mfa_enabled"] is True, "/auth/me says mfa_enabled")
    refreshed = post("/auth/refresh", {"refresh_token": session["refresh_token"]})
    check(refreshed.status_code == 200 and claims(refreshed.json()["access_token"])["amr"] == ["pwd", "otp"], "a refresh keeps the amr")
    again = post("/auth/mfa/verify", {"mfa_token": problem["mfa_token"], "code": ahead})
    check(again.status_code == 401 and again.json()["type"] == "urn:keygate:problem:invalid-second-factor", "a used mfa_token is refused")
    replay = post("/auth/login", {"email": ada, "password": PASSWORD}).json()["mfa_token"]
    check(post("/auth/mfa/verify", {"mfa_token": replay, "code": ahead}).status_code == 401, "the same code on a new challenge is refused (RFC 6238 5.2)")

    # One code on two challenges at once: wait for the next step, so a fresh code exists.
    time.sleep(30 - time.time() % 30 + 0.5)
    fresh = totp.at(time.time() + 30)
    tokens = [post("/auth/login", {"email": ada, "password": PASSWORD}).json()["mfa_token"] for _ in range(2)]
    barrier = threading.Barrier(2)
    results = [None, None]

    def verify(i):
        s = requests.Session()
        barrier.wait()
        results[i] = s.post(f"{base}/auth/mfa/verify", json={"mfa_token": tokens[i], "code": fresh}, timeout=60).status_code

    threads = [threading.Thread(target=verify, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(sorted(results) == [200, 401], f"one code on two challenges at once: exactly one wins ({results})")

    recovery = post("/auth/login", {"email": ada, "password": PASSWORD}).json()["mfa_token"]
    used = post("/auth/mfa/verify", {"mfa_token": recovery, "recovery_code": codes[0]})
    check(used.status_code == 200 and claims(used.json()["access_token"])["amr"] == ["pwd", "otp"], "a recovery code completes a login")
    other = post("/auth/login", {"email": ada, "password": PASSWORD}).json()["mfa_token"]
    check(post("/auth/mfa/verify", {"mfa_token": other, "recovery_code": codes[0]}).status_code == 401, "a used recovery code is refused")

    bearer = used.json()["access_token"]
    no_code = post("/auth/mfa/totp/disable", {}, bearer)
    check(no_code.status_code == 400 and no_code.json()["type"] == "urn:keygate:problem:invalid-request", "disabling without a code is 400")
    bad = post("/auth/mfa/totp/disable", {"recovery_code": "aaaa-bbbb-cccc-dddd-eeee-ffff"}, bearer)
    check(bad.status_code == 401 and bad.json()["type"] == "urn:keygate:problem:invalid-second-factor", "disabling with a wrong code is 401")
    check(post("/auth/mfa/totp/disable", {"recovery_code": codes[1]}, bearer).status_code == 204, "disabling with a recovery code is 204")
    plain = post("/auth/login", {"email": ada, "password": PASSWORD})
    check(plain.status_code == 200 and claims(plain.json()["access_token"])["amr"] == ["pwd"], "the next login needs the password only")

    # The attempt cap, on an account of its own (the wrong codes also count on its login throttle).
    bob, bob_totp, _, bob_activated = mfa_user("bob")
    seen.extend(bob_activated["recovery_codes"])
    capped = post("/auth/login", {"email": bob, "password": PASSWORD}).json()["mfa_token"]
    barrier = threading.Barrier(8)
    statuses = [None] * 8

    def guess(i):
        s = requests.Session()
        barrier.wait()
        statuses[i] = s.post(f"{base}/auth/mfa/verify", json={"mfa_token": capped, "code": f"{i:06d}"}, timeout=60).status_code

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The wrong codes opened the login throttle's window too: once it has passed, a fresh challenge
    # completes (and resets the counter), so the refusal below is the spent challenge's own cap.
    time.sleep(10)
    bob_codes = bob_activated["recovery_codes"]
    fresh = post("/auth/login", {"email": bob, "password": PASSWORD}).json()["mfa_token"]
    check(post("/auth/mfa/verify", {"mfa_token": fresh, "recovery_code": bob_codes[0]}).status_code == 200, "a fresh challenge completes once the throttle's window has passed")
    dead = post("/auth/mfa/verify", {"mfa_token": capped, "recovery_code": bob_codes[1]})
    check(statuses.count(200) == 0 and dead.status_code == 401, f"after 8 wrong codes at once ({statuses}) the challenge is dead, even for a right code")
    return seen


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
