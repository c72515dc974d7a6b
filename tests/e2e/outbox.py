"""keygate-local's file outbox as the e2e scripts read it: the verification mail of an address
(`<data-dir>/outbox/*.eml`, written by the default `--mailer file`) and the proof of its link.

    python outbox.py verify BASE_URL DATA_DIR EMAIL   # POSTs the mailed token to /auth/email/verify

Importable: `verify(base, data_dir, email)`, `take(data_dir, email, needle)`.
"""

import email
import email.policy
import json
import os
import re
import sys
import time
import urllib.request

TOKEN = re.compile(r"#token=(kg(?:ev|pr)_[A-Za-z0-9_-]+)")


def take(data_dir, to, needle, timeout=15.0):
    """The text of the first mail to `to` whose text holds `needle`, waited for, removed."""
    folder = os.path.join(data_dir, "outbox")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                message = email.message_from_binary_file(f, policy=email.policy.default)
            text = message.get_body(preferencelist=("plain",)).get_content()
            if message["To"].lower() == to.lower() and needle in text:
                os.remove(path)
                return text
        time.sleep(0.05)
    raise SystemExit(f"no mail holding {needle!r} to {to} in {folder}")


def verify(base, data_dir, to):
    """Verifies `to` with the token of its verification mail."""
    token = TOKEN.search(take(data_dir, to, "#token=kgev_")).group(1)
    request = urllib.request.Request(
        f"{base}/auth/email/verify",
        data=json.dumps({"token": token}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 204:
            raise SystemExit(f"verification answered {response.status}")


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "verify":
        raise SystemExit(__doc__)
    verify(sys.argv[2], sys.argv[3], sys.argv[4])
