"""Creates the benchmark's table and key secret on a running moto server (boto3 comes with moto).

Usage: python moto_fixture.py ENDPOINT TABLE SECRET_NAME KEYSET_JSON_FILE [ITEMS_JSON_FILE [PUBLIC_KEYSET_JSON_FILE]]
Prints one JSON line: {"secret_arn": ..., "public_secret_arn": ...} (the second with a public key set,
stored as SECRET_NAME-public, what rotate-keys writes for the functions that only verify). The table follows the contract: pk/sk strings, TTL attribute
expiresAt, one KEYS_ONLY GSI byUserId on userId; on demand. ITEMS_JSON_FILE holds DynamoDB-typed items
to put (the Node.js baseline's own user and first refresh token).
"""

import json
import os
import sys

import boto3


def main() -> None:
    endpoint, table, secret_name, keyset_file = sys.argv[1:5]
    items_file = sys.argv[5] if len(sys.argv) > 5 else None
    public_file = sys.argv[6] if len(sys.argv) > 6 else None
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    )
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    sm = session.client("secretsmanager", endpoint_url=endpoint)

    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "userId", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byUserId",
                "KeySchema": [{"AttributeName": "userId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    ddb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
    )
    with open(keyset_file, encoding="utf-8") as f:
        secret = sm.create_secret(Name=secret_name, SecretString=f.read())
    if items_file:
        with open(items_file, encoding="utf-8") as f:
            for item in json.load(f):
                ddb.put_item(TableName=table, Item=item)
    # What CDK generates for the audit email hashes' HMAC: 64 hex digits.
    server_key = sm.create_secret(Name=secret_name + "-server-key", SecretString=os.urandom(32).hex())
    out = {"secret_arn": secret["ARN"], "server_key_secret_arn": server_key["ARN"]}
    if public_file:
        with open(public_file, encoding="utf-8") as f:
            public = sm.create_secret(Name=secret_name + "-public", SecretString=f.read())
        out["public_secret_arn"] = public["ARN"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
