"""Email verification and password reset against keygate-local, as a new user and an attacker would,
with real mail delivery: an SMTP sink (aiosmtpd) receives what keygate-local's outbox worker sends.

Starts the sink on a free port and keygate-local with KEYGATE_MAILER=smtp://127.0.0.1:PORT,
KEYGATE_APP_URL and KEYGATE_REQUIRE_VERIFIED_EMAIL=true, then checks:
- registration mails a link (KEYGATE_APP_URL + /verify-email#token=...) and an 8-digit code, in text
  and HTML; login before verification is 403 email-not-verified (a wrong password the usual 401);
- the link verifies once; then login works and the token and /auth/me say email_verified;
- a taken email registers with the same answer and mails its owner a notice without link or code;
- a poisoned Host / X-Forwarded-Host never reaches a link;
- forgot and verification answer known, unknown, cooling-down and verified addresses with the same
  status, headers and body, and only mail who they should; the medians of their times are printed;
- 5 wrong codes kill a code; a newer mail kills the older link;
- 8 concurrent resets with one link (released by a barrier): exactly one succeeds;
- a reset revokes every session and old access token, sets the password, mails a notice;
- no password, token, code or address appears in the server's logs.
Prints each check and "N/N checks passed"; exits non-zero on the first failure.

usage: python email_smtp.py PATH/TO/keygate-local
"""

import base64
import email
import email.policy
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests
from aiosmtpd.controller import Controller

APP_URL = "https://app.example.test"
TOKEN_IN_LINK = re.compile(r"#token=(kg(?:ev|pr)_[A-Za-z0-9_-]+)")
CODE = re.compile(r"(?<![0-9])([0-9]{8})(?![0-9])")
COOLDOWN_SECS = 5
IGNORED_HEADERS = {"x-request-id", "x-correlation-id", "date"}
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise SystemExit(f"FAIL {what}")
    checks += 1
    print(f"ok   {what}")


class Sink:
    """Collects every message delivered to it, parsed."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def take(self, to, count=1, timeout=10.0):
        """Waits for `count` messages to `to` and removes them from the sink."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                mine = [m for m in self.messages if to in m[0]]
                if len(mine) >= count:
                    for m in mine:
                        self.messages.remove(m)
                    return [m[1] for m in mine]
            time.sleep(0.05)
        with self.lock:
            mine = [m for m in self.messages if to in m[0]]
        raise SystemExit(f"FAIL expected {count} mail(s) to {to}, got {len(mine)}")

    def none_for(self, to, wait=1.5):
        time.sleep(wait)
        with self.lock:
            return not any(to in m[0] for m in self.messages)


def parts(message):
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def secrets_of(message):
    """The link's token and the code of a mail's text (None where it has none)."""
    text, _ = parts(message)
    token = TOKEN_IN_LINK.search(text)
    # A token may hold 8 digits in a row: the code is looked for on the lines without a URL.
    codes = [m.group(1) for line in text.splitlines() if "://" not in line for m in [CODE.search(line)] if m]
    return (token.group(1) if token else None), (codes[0] if codes else None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def claims(access_token):
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def same_answer(responses):
    def shape(r):
        headers = {k.lower(): v for k, v in r.headers.items() if k.lower() not in IGNORED_HEADERS}
        return r.status_code, headers, r.content

    first = shape(responses[0])
    return all(shape(r) == first for r in responses), first


def main(binary):
    sink = Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    with tempfile.TemporaryDirectory() as data_dir:
        log_path = os.path.join(data_dir, "server.log")
        env = dict(
            os.environ,
            KEYGATE_MAILER=f"smtp://127.0.0.1:{smtp_port}",
            KEYGATE_APP_URL=APP_URL,
            KEYGATE_REQUIRE_VERIFIED_EMAIL="true",
            KEYGATE_MAIL_FROM="keygate test <no-reply@keygate.test>",
            # 5 s instead of 60 s between two mails of one purpose to one address, so the run can
            # wait one out; the hourly cap stays the default 5.
            KEYGATE_EMAIL_COOLDOWN_SECONDS=str(COOLDOWN_SECS),
            RUST_LOG="debug",
        )
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [binary, "--addr", "127.0.0.1:0", "--data-dir", os.path.join(data_dir, "data")],
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
                secrets_seen = run(base, sink)
            finally:
                process.terminate()
                process.wait(timeout=30)
                controller.stop()
        with open(log_path) as log:
            logs = log.read()
    check("mail" in logs and "sent" in logs, "the server logged its deliveries")
    leaked = [s for s in secrets_seen if s in logs]
    check(not leaked, f"no password, token, code or address of the {len(secrets_seen)} used appears in the logs")
    print(f"{checks}/{checks} checks passed")


def run(base, sink):
    http = requests.Session()
    post = lambda path, body, **kw: http.post(f"{base}{path}", json=body, timeout=30, **kw)  # noqa: E731
    tag = secrets.token_hex(4)
    ada, grace, nobody = (f"{n}-{tag}@example.com" for n in ("ada", "grace", "nobody"))
    password = "correct horse battery " + secrets.token_hex(6)
    seen = [ada, grace, nobody, password]

    # Registration and verification.
    registered = post("/auth/register", {"email": ada, "password": password})
    check(registered.status_code == 201, "register answers 201")
    [mail] = sink.take(ada)
    text, html = parts(mail)
    token, code = secrets_of(mail)
    seen += [token, code]
    check(mail["From"] == "keygate test <no-reply@keygate.test>" and mail["To"] == ada, "the mail comes from KEYGATE_MAIL_FROM to the address")
    check(token and token.startswith("kgev_") and f"{APP_URL}/verify-email#token={token}" in text, "the text names the link: KEYGATE_APP_URL/verify-email#token=...")
    check(code is not None and code in html and f"{APP_URL}/verify-email#token={token}" in html, "the HTML carries the same link and 8-digit code")
    check(password not in mail.as_string(), "the mail holds no password")
    login = post("/auth/login", {"email": ada, "password": password})
    check(login.status_code == 403 and login.json()["type"] == "urn:keygate:problem:email-not-verified", "an unverified account's right password gets 403 email-not-verified")
    wrong = post("/auth/login", {"email": ada, "password": password + "x"})
    check(wrong.status_code == 401 and wrong.json()["type"] == "urn:keygate:problem:invalid-credentials", "a wrong password still gets 401 invalid-credentials")
    check(post("/auth/email/verify", {"token": token}).status_code == 204, "the link's token verifies (204)")
    again = post("/auth/email/verify", {"token": token})
    check(again.status_code == 400 and again.json()["type"] == "urn:keygate:problem:invalid-code", "a used link gets 400 invalid-code")
    login = post("/auth/login", {"email": ada, "password": password})
    check(login.status_code == 200, "the verified account logs in")
    session = login.json()
    seen += [session["access_token"], session["refresh_token"]]
    me = http.get(f"{base}/auth/me", headers={"authorization": f"Bearer {session['access_token']}"}, timeout=30).json()
    check(claims(session["access_token"])["email_verified"] is True and me["email_verified"] is True, "the access token and /auth/me say email_verified")

    # A taken email (after the cooldown: the owner's notices count on the verification limits).
    time.sleep(COOLDOWN_SECS + 0.2)
    taken = post("/auth/register", {"email": ada, "password": "another password entirely 1"})
    check(taken.status_code == 201 and taken.json().keys() == registered.json().keys(), "a taken email registers with the same answer")
    [notice] = sink.take(ada)
    check(secrets_of(notice) == (None, None) and "register" in notice["Subject"].lower(), "its owner is mailed a notice without link or code")

    # The same answer for every address.
    post("/auth/register", {"email": grace, "password": password})
    sink.take(grace)
    # forgot: ada known (mailed), nobody unknown, ada again (cooling down). verification: ada
    # already verified, nobody unknown, grace unverified but cooling down after her registration.
    for path, addresses in [("/auth/password/forgot", (ada, nobody, ada.upper())), ("/auth/email/verification", (ada, nobody, grace))]:
        answers = [post(path, {"email": e}) for e in addresses]
        alike, (status, headers, body) = same_answer(answers)
        check(alike and status == 202 and body == b"", f"{path}: {len(addresses)} addresses in different states get one answer (202, same headers, empty body)")
    [reset_mail] = sink.take(ada)
    check("reset" in reset_mail["Subject"].lower(), "forgot mailed the known address once (the repeat cooled down)")
    check(sink.none_for(nobody) and sink.none_for(grace, wait=0) and sink.none_for(ada, wait=0), "nothing else was mailed: not the unknown, the cooling-down or the verified address")
    # Timing: a known account (some requests queue a mail, the rest cool down) against unknown ones.
    timer = f"timer-{tag}@example.com"
    post("/auth/register", {"email": timer, "password": password})
    sink.take(timer)
    seen.append(timer)
    timings = {"known": [], "unknown": []}
    for i in range(40):
        for kind, address in (("known", timer), ("unknown", f"ghost-{i}-{tag}@example.com")):
            started = time.perf_counter()
            post("/auth/password/forgot", {"email": address})
            timings[kind].append((time.perf_counter() - started) * 1000)
    known, unknown = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    print(f"info forgot medians over 40 requests each: known {known:.2f} ms, unknown {unknown:.2f} ms (ratio {known / unknown:.2f})")
    timer_mails = sink.take(timer, count=1)
    check(1 <= len(timer_mails) <= 5, f"the known address got {len(timer_mails)} of 40 requested mails (cooldown, hourly cap 5)")

    # Host-header poisoning (grace's first reset request: ada's is cooling down).
    poisoned = post("/auth/password/forgot", {"email": grace}, headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example"})
    check(poisoned.status_code == 202, "a forgot with a poisoned Host is answered as any other")
    [grace_reset] = sink.take(grace)
    grace_text, grace_html = parts(grace_reset)
    check("evil.example" not in grace_text + grace_html and f"{APP_URL}/reset-password#token=" in grace_text, "the link is built from KEYGATE_APP_URL, never from the request")
    grace_token, grace_code = secrets_of(grace_reset)
    seen += [grace_token, grace_code]

    # Wrong codes, then the dead code.
    for _ in range(5):
        wrong = post("/auth/password/reset", {"email": grace, "code": "%08d" % ((int(grace_code) + 1) % 10**8), "new_password": password + "!"})
        assert wrong.status_code == 400, wrong.text
    dead = post("/auth/password/reset", {"email": grace, "code": grace_code, "new_password": password + "!"})
    check(dead.status_code == 400 and dead.json()["type"] == "urn:keygate:problem:invalid-code", "after 5 wrong codes the right code is refused too")
    dead_link = post("/auth/password/reset", {"token": grace_token, "new_password": password + "!"})
    check(dead_link.status_code == 400, "and so is its link (one item, one life)")

    # Concurrent resets with one link, and what a reset revokes.
    token, code = secrets_of(reset_mail)
    seen += [token, code]
    new_passwords = [f"a new passphrase number {i} {secrets.token_hex(4)}" for i in range(8)]
    seen += new_passwords
    barrier = threading.Barrier(8)
    results = [None] * 8

    def reset(i):
        s = requests.Session()
        barrier.wait()
        results[i] = s.post(f"{base}/auth/password/reset", json={"token": token, "new_password": new_passwords[i]}, timeout=60)

    threads = [threading.Thread(target=reset, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in enumerate(results) if r.status_code == 204]
    check(len(winners) == 1 and all(r.status_code == 400 and r.json()["type"] == "urn:keygate:problem:invalid-code" for i, r in enumerate(results) if i not in winners), "8 concurrent resets with one link: exactly one 204, seven 400 invalid-code")
    check(results[winners[0]].content == b"", "the reset answers no tokens")
    [changed] = sink.take(ada)
    check("changed" in changed["Subject"].lower() and secrets_of(changed) == (None, None), "the owner is mailed a 'password changed' notice")
    refreshed = post("/auth/refresh", {"refresh_token": session["refresh_token"]})
    me = http.get(f"{base}/auth/me", headers={"authorization": f"Bearer {session['access_token']}"}, timeout=30)
    check(refreshed.status_code == 401 and me.status_code == 401, "the reset revoked the old session and its access token")
    old = post("/auth/login", {"email": ada, "password": password})
    new = post("/auth/login", {"email": ada, "password": new_passwords[winners[0]]})
    check(old.status_code == 401 and new.status_code == 200, "the old password is refused, the winner's works")
    return [s for s in seen if s]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
