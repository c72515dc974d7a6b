// Verifies one access token with jose (panva/jose) through a remote JWKS, as a Node.js API would.
// usage: node verify-jwt.mjs JWKS_URI ISSUER AUDIENCE EXPECTED_SUB ALG TOKEN
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUri, issuer, audience, sub, alg, token] = process.argv.slice(2);
const jwks = createRemoteJWKSet(new URL(jwksUri));
const { payload, protectedHeader } = await jwtVerify(token, jwks, {
  issuer,
  audience,
  algorithms: [alg],
  typ: "at+jwt",
  requiredClaims: ["exp", "iat", "nbf", "sub", "jti"],
});
if (payload.sub !== sub) {
  console.error(`sub ${payload.sub} is not ${sub}`);
  process.exit(1);
}
let tamperedAccepted = false;
try {
  await jwtVerify(token.slice(0, -2) + (token.at(-2) === "A" ? "B" : "A") + token.at(-1), jwks, { issuer, audience, algorithms: [alg] });
  tamperedAccepted = true;
} catch {
  // expected
}
if (tamperedAccepted) {
  console.error("jose accepted a tampered token");
  process.exit(1);
}
console.log(`ok   jose verified a ${protectedHeader.alg} token through the JWKS`);
