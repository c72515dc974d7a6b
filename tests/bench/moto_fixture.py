"""Creates the benchmark's secrets and mail identity on a running moto server (boto3 comes with moto).

Usage: python moto_fixture.py ENDPOINT SECRET_NAME MAIL_DOMAIN KEYSET_JSON_FILE PUBLIC_KEYSET_JSON_FILE
Prints one JSON line with the ARNs of the four secrets a stage has: the signing-key set (SECRET_NAME),
its public set (SECRET_NAME-public, what rotate-keys writes for the functions that only verify), the
server key and the TOTP data-key ring. MAIL_DOMAIN becomes a verified SES v2 identity (the mailer's
sender). The table is the harness's own (handlers/tools/bench/src/table.rs), created afresh per cold
start.
"""

import json
import os
import sys

import boto3


def main() -> None:
    endpoint, secret_name, mail_domain, keyset_file, public_file = sys.argv[1:6]
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    )
    sm = session.client("secretsmanager", endpoint_url=endpoint)
    ses = session.client("sesv2", endpoint_url=endpoint)

    with open(keyset_file, encoding="utf-8") as f:
        secret = sm.create_secret(Name=secret_name, SecretString=f.read())
    with open(public_file, encoding="utf-8") as f:
        public = sm.create_secret(Name=secret_name + "-public", SecretString=f.read())
    # What CDK generates for the audit email hashes' HMAC: 64 hex digits.
    server_key = sm.create_secret(Name=secret_name + "-server-key", SecretString=os.urandom(32).hex())
    # What CDK generates from the template {"current": "k1"}: a key id named current and its material.
    factor_keys = sm.create_secret(
        Name=secret_name + "-factor-keys",
        SecretString=json.dumps({"current": "k1", "k1": os.urandom(32).hex()}),
    )
    ses.create_email_identity(EmailIdentity=mail_domain)
    print(
        json.dumps(
            {
                "secret_arn": secret["ARN"],
                "public_secret_arn": public["ARN"],
                "server_key_secret_arn": server_key["ARN"],
                "factor_keys_secret_arn": factor_keys["ARN"],
            }
        )
    )


if __name__ == "__main__":
    main()
