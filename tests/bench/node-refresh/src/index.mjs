// keygate's POST /auth/refresh written the way the Node.js seed describes it, as the benchmark's Node
// baseline (issue 6): AWS SDK v3 clients created outside the handler and reused, the signing-key secret
// cached in memory with a TTL, jsonwebtoken for signing, one handler per function, bundled by esbuild
// (target node20, minified). It does the same work as the Rust refresh function on the same table and
// secret: parse the presented token, one conditional TransactWriteItems (mark the presented token used
// if unused and its hash matches, put its child, check the user's revokedBefore watermark), sign an
// ES256 access token, answer the token response. Only the benchmark runs it; it is not deployed.

import { createHash, createPrivateKey, randomBytes, randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import jwt from "jsonwebtoken";

const TABLE = process.env.KEYGATE_TABLE_NAME;
const SECRET_ID = process.env.KEYGATE_KEYS_SECRET_ID;
const ISSUER = process.env.KEYGATE_ISSUER;
const AUDIENCE = process.env.KEYGATE_AUDIENCE ?? "keygate";
const ACCESS_TTL = Number(process.env.KEYGATE_ACCESS_TOKEN_TTL_SECONDS ?? 900);
const KEY_CACHE_TTL_MS = Number(process.env.KEYGATE_KEY_CACHE_TTL_SECONDS ?? 300) * 1000;

// Outside the handler: created once per execution environment, reused by every invocation.
const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const secrets = new SecretsManagerClient({});

let cachedKey = null;
let cachedAt = 0;

async function signingKey() {
  if (cachedKey && Date.now() - cachedAt < KEY_CACHE_TTL_MS) return cachedKey;
  const out = await secrets.send(new GetSecretValueCommand({ SecretId: SECRET_ID }));
  const first = JSON.parse(out.SecretString).keys[0];
  if (first.alg !== "ES256") throw new Error("this baseline signs ES256 only");
  cachedKey = {
    kid: first.kid,
    key: createPrivateKey({ key: Buffer.from(first.private_key, "base64url"), format: "der", type: "pkcs8" }),
  };
  cachedAt = Date.now();
  return cachedKey;
}

// kgrt_ + base64url(version 1 | issuedAtMs 8 | authTimeS 8 | familyExpiresAtS 8 | userId 16 | familyId 16 |
// tokenId 16 | secret 32 | email), the same format as keygate-core's refresh tokens.
const PREFIX = "kgrt_";
const FIXED = 1 + 8 + 8 + 8 + 16 + 16 + 16 + 32;

function parseToken(token) {
  if (typeof token !== "string" || !token.startsWith(PREFIX) || token.length > 500) return null;
  const bytes = Buffer.from(token.slice(PREFIX.length), "base64url");
  if (bytes.length <= FIXED || bytes[0] !== 1 || PREFIX + bytes.toString("base64url") !== token) return null;
  return {
    issuedAtMs: Number(bytes.readBigInt64BE(1)),
    authTimeS: Number(bytes.readBigInt64BE(9)),
    familyExpiresAtS: Number(bytes.readBigInt64BE(17)),
    userId: bytes.subarray(25, 41),
    familyId: bytes.subarray(41, 57),
    tokenId: bytes.subarray(57, 73),
    email: bytes.subarray(FIXED).toString("utf8"),
  };
}

function encodeToken(t, secret) {
  const out = Buffer.alloc(FIXED);
  out[0] = 1;
  out.writeBigInt64BE(BigInt(t.issuedAtMs), 1);
  out.writeBigInt64BE(BigInt(t.authTimeS), 9);
  out.writeBigInt64BE(BigInt(t.familyExpiresAtS), 17);
  t.userId.copy(out, 25);
  t.familyId.copy(out, 41);
  t.tokenId.copy(out, 57);
  secret.copy(out, 73);
  return PREFIX + Buffer.concat([out, Buffer.from(t.email, "utf8")]).toString("base64url");
}

const sha256 = (s) => createHash("sha256").update(s).digest("hex");
const uuid = (b) => {
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

const problem = (status, title) => ({
  statusCode: status,
  headers: { "content-type": "application/problem+json", "cache-control": "no-store" },
  body: JSON.stringify({ type: "about:blank", title, status }),
});

export const handler = async (event) => {
  let body;
  try {
    body = JSON.parse(event.isBase64Encoded ? Buffer.from(event.body, "base64").toString("utf8") : event.body);
  } catch {
    return problem(400, "Bad Request");
  }
  const presented = body?.refresh_token;
  const token = parseToken(presented);
  const now = Date.now();
  const nowS = Math.floor(now / 1000);
  if (!token || token.familyExpiresAtS <= nowS) return problem(401, "Invalid refresh token");

  const { kid, key } = await signingKey();
  const familyHex = token.familyId.toString("hex");
  const pk = `USER#${token.email}`;
  const child = { ...token, issuedAtMs: now, tokenId: randomBytes(16) };
  const childToken = encodeToken(child, randomBytes(32));
  const childHex = child.tokenId.toString("hex");

  try {
    await ddb.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Update: {
              TableName: TABLE,
              Key: { pk, sk: `REFRESH#${familyHex}#${token.tokenId.toString("hex")}` },
              UpdateExpression: "SET usedAt = :now, replacedBy = :child",
              ConditionExpression: "attribute_exists(pk) AND tokenHash = :hash AND attribute_not_exists(usedAt) AND expiresAt > :nowS",
              ExpressionAttributeValues: { ":now": now, ":child": childHex, ":hash": sha256(presented), ":nowS": nowS },
            },
          },
          {
            Put: {
              TableName: TABLE,
              Item: {
                pk,
                sk: `REFRESH#${familyHex}#${childHex}`,
                tokenHash: sha256(childToken),
                issuedAt: now,
                expiresAt: token.familyExpiresAtS,
                familyExpiresAt: token.familyExpiresAtS,
              },
              ConditionExpression: "attribute_not_exists(pk)",
            },
          },
          {
            ConditionCheck: {
              TableName: TABLE,
              Key: { pk, sk: "PROFILE" },
              ConditionExpression: "attribute_exists(pk) AND (attribute_not_exists(revokedBefore) OR revokedBefore <= :issued)",
              ExpressionAttributeValues: { ":issued": token.issuedAtMs },
            },
          },
        ],
      }),
    );
  } catch (err) {
    if (err.name === "TransactionCanceledException") return problem(401, "Invalid refresh token");
    throw err;
  }

  const access = jwt.sign(
    {
      sub: uuid(token.userId),
      auth_time: token.authTimeS,
      jti: randomUUID(),
      client_id: AUDIENCE,
      nbf: nowS,
    },
    key,
    { algorithm: "ES256", keyid: kid, header: { typ: "at+jwt" }, expiresIn: ACCESS_TTL, issuer: ISSUER, audience: AUDIENCE },
  );
  return {
    statusCode: 200,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
    body: JSON.stringify({ access_token: access, token_type: "Bearer", expires_in: ACCESS_TTL, refresh_token: childToken }),
  };
};
