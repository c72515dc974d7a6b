"""A standard OAuth 2.0 client (Authlib, with requests) against keygate-local: discovery, refresh
through the advertised token endpoint, RFC 7009 revocation, and the refusals that follow.

Starts `keygate-local` on a free port with a fresh data folder, then, as an app would:
1. discovers the server through RFC 8414 metadata (and checks the OpenID discovery document is the
   same) and takes every URL from it;
2. registers and logs in through keygate's own JSON endpoints (`keygate_endpoints` in the metadata)
   to get a refresh token;
3. refreshes it with Authlib's OAuth2Session as a public client (`token_endpoint_auth_method:
   none`), the token endpoint read from the metadata;
4. revokes the refresh token, sees Authlib's refresh refused with `invalid_grant`;
5. revokes an access token and sees `/auth/me` refuse it.
Exits non-zero on the first failure.

usage: python oauth_authlib.py PATH/TO/keygate-local
"""

import os
import secrets
import sys
import tempfile

import authlib
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from outbox import verify  # noqa: E402  (the verification mail in keygate-local's file outbox)
from third_party_jwt import start  # noqa: E402  (one way of starting keygate-local for these scripts)

CLIENT_ID = "keygate"  # KEYGATE_OAUTH_CLIENT_IDS defaults to the audience


def expect_invalid_grant(session, refresh_token, why):
    try:
        session.refresh_token(refresh_token=refresh_token)
    except OAuthError as error:
        if error.error != "invalid_grant":
            raise SystemExit(f"{why}: expected invalid_grant, got {error.error}")
        return
    raise SystemExit(f"{why}: the refresh was accepted")


def check(binary):
    with tempfile.TemporaryDirectory() as data_dir:
        process, base = start(binary, data_dir, "ES256")
        try:
            http = requests.Session()
            metadata = http.get(f"{base}/.well-known/oauth-authorization-server", timeout=30).json()
            oidc = http.get(f"{base}/.well-known/openid-configuration", timeout=30).json()
            assert metadata == oidc, "both discovery documents say the same"
            assert metadata["issuer"] == base, metadata
            assert metadata["grant_types_supported"] == ["refresh_token"], metadata
            assert "none" in metadata["token_endpoint_auth_methods_supported"], metadata
            assert "none" in metadata["revocation_endpoint_auth_methods_supported"], metadata
            endpoints = metadata["keygate_endpoints"]

            email = f"authlib-{secrets.token_hex(4)}@example.com"
            credentials = {"email": email, "password": "authlib client check " + secrets.token_hex(8)}
            assert http.post(endpoints["register"], json=credentials, timeout=30).status_code == 201
            verify(base, data_dir, email)  # the mailed link, as the user would (logins need it)
            login = http.post(endpoints["login"], json=credentials, timeout=30).json()

            # The token endpoint comes from the metadata (OAuth2Client reads `token_endpoint` from it).
            session = OAuth2Session(
                client_id=CLIENT_ID,
                token_endpoint_auth_method="none",
                revocation_endpoint_auth_method="none",
                token=login,
                token_endpoint=metadata["token_endpoint"],
            )
            refreshed = session.refresh_token(refresh_token=login["refresh_token"])
            assert refreshed["token_type"] == "Bearer" and refreshed["refresh_token"] != login["refresh_token"]
            me = http.get(endpoints["me"], headers={"authorization": f"Bearer {refreshed['access_token']}"}, timeout=30)
            assert me.status_code == 200, me.text
            print(f"ok   Authlib {authlib.__version__} refreshed through {metadata['token_endpoint']}")

            revoked = session.revoke_token(
                metadata["revocation_endpoint"], refreshed["refresh_token"], token_type_hint="refresh_token"
            )
            assert revoked.status_code == 200, revoked.text
            expect_invalid_grant(session, refreshed["refresh_token"], "a revoked refresh token")
            expect_invalid_grant(session, login["refresh_token"], "a rotated (used) refresh token")
            print("ok   Authlib revoked a refresh token; refreshing it again is invalid_grant")

            revoked = session.revoke_token(
                metadata["revocation_endpoint"], refreshed["access_token"], token_type_hint="access_token"
            )
            assert revoked.status_code == 200, revoked.text
            me = http.get(endpoints["me"], headers={"authorization": f"Bearer {refreshed['access_token']}"}, timeout=30)
            assert me.status_code == 401, me.text
            assert me.headers["content-type"] == "application/problem+json", me.headers
            print("ok   Authlib revoked an access token; /auth/me refuses it (401)")
        finally:
            process.terminate()
            process.wait(timeout=10)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    check(sys.argv[1])
    print("3 passed, 0 failed")


if __name__ == "__main__":
    main()
