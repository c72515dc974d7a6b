// A standard OAuth 2.0 client (oauth4webapi, panva) against keygate-local: RFC 8414 discovery, the
// refresh_token grant at the advertised token endpoint, RFC 7009 revocation, and the refusals after.
//
// Starts `keygate-local` on a free port with a fresh data folder, discovers it, registers and logs in
// through keygate's own JSON endpoints (`keygate_endpoints` in the metadata) for a refresh token,
// refreshes it as a public client (oauth.None()), revokes it and sees the next refresh rejected with
// `invalid_grant`, then revokes an access token and sees /auth/me refuse it. Exits non-zero on the
// first failure.
//
// usage: node oauth-oauth4webapi.mjs PATH/TO/keygate-local
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import * as oauth from 'oauth4webapi';

const here = dirname(fileURLToPath(import.meta.url));
const [binary] = process.argv.slice(2);
if (!binary) {
  console.error('usage: node oauth-oauth4webapi.mjs PATH/TO/keygate-local');
  process.exit(2);
}

// oauth4webapi refuses plain-HTTP endpoints unless a request carries its documented (and
// deliberately deprecated-marked) `allowInsecureRequests` option; keygate-local listens on http on
// loopback only, so every request below passes it. Against a deployed stage (HTTPS) it is not needed.
const insecure = { [oauth.allowInsecureRequests]: true };

function start(dataDir) {
  const child = spawn(binary, ['--addr', '127.0.0.1:0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (line.startsWith('listening on ')) {
        resolve({ child, base: line.slice('listening on '.length).trim() });
      }
    });
    child.on('exit', (code) => reject(new Error(`keygate-local exited (${code}) before listening`)));
  });
}

async function json(url, body, bearer) {
  const headers = { 'content-type': 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

function assert(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

async function expectInvalidGrant(as, client, refreshToken, why) {
  const response = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, insecure);
  try {
    await oauth.processRefreshTokenResponse(as, client, response);
  } catch (error) {
    assert(error instanceof oauth.ResponseBodyError, `${why}: ${error}`);
    assert(error.error === 'invalid_grant', `${why}: expected invalid_grant, got ${error.error}`);
    return;
  }
  throw new Error(`${why}: the refresh was accepted`);
}

const dataDir = mkdtempSync(join(tmpdir(), 'keygate-oauth4webapi-'));
const { child, base } = await start(dataDir);
try {
  const issuer = new URL(base);
  // RFC 8414 discovery (`algorithm: 'oauth2'`): /.well-known/oauth-authorization-server; the
  // issuer in the document must be the one asked for.
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
  assert(JSON.stringify(as.grant_types_supported) === '["refresh_token"]', JSON.stringify(as));
  assert(as.token_endpoint_auth_methods_supported.includes('none'), JSON.stringify(as));
  const oidc = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }));
  assert(oidc.token_endpoint === as.token_endpoint && oidc.revocation_endpoint === as.revocation_endpoint, 'both documents agree');
  const client = { client_id: 'keygate' }; // KEYGATE_OAUTH_CLIENT_IDS defaults to the audience
  const endpoints = as.keygate_endpoints;

  const credentials = { email: `oauth4webapi-${Date.now()}@example.com`, password: 'oauth4webapi client check 2026' };
  assert((await json(endpoints.register, credentials)).status === 201, 'register');
  // The mailed link, as the user would (logins need a verified email): tests/e2e/outbox.py reads
  // keygate-local's file outbox, one reader for every e2e script.
  execFileSync('python', [join(here, 'outbox.py'), 'verify', base, dataDir, credentials.email], { stdio: 'inherit' });
  const login = (await json(endpoints.login, credentials)).body;

  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, oauth.None(), login.refresh_token, insecure),
  );
  assert(refreshed.token_type.toLowerCase() === 'bearer' && refreshed.refresh_token !== login.refresh_token, JSON.stringify(refreshed));
  const me = await fetch(endpoints.me, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
  assert(me.status === 200, `me: ${me.status}`);
  console.log(`ok   oauth4webapi refreshed through ${as.token_endpoint}`);

  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, oauth.None(), refreshed.refresh_token, {
      additionalParameters: { token_type_hint: 'refresh_token' },
      ...insecure,
    }),
  );
  await expectInvalidGrant(as, client, refreshed.refresh_token, 'a revoked refresh token');
  await expectInvalidGrant(as, client, login.refresh_token, 'a rotated (used) refresh token');
  console.log('ok   oauth4webapi revoked a refresh token; refreshing it again is invalid_grant');

  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, oauth.None(), refreshed.access_token, {
      additionalParameters: { token_type_hint: 'access_token' },
      ...insecure,
    }),
  );
  const refused = await fetch(endpoints.me, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
  assert(refused.status === 401, `me with a revoked access token: ${refused.status}`);
  console.log('ok   oauth4webapi revoked an access token; /auth/me refuses it (401)');
  console.log('3 passed, 0 failed');
} finally {
  child.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
