// A third-party single-page app with panva's oauth4webapi, configured from
// RFC 8414 discovery: the authorization code flow with PKCE, the `iss`
// response parameter checked (RFC 9207, `validateAuthResponse`), the code
// redeemed as a public client, and the refresh token rotated.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import * as oauth from "oauth4webapi";
import { admin, register, signInAt, startGatehouse } from "./server.js";

const server = await startGatehouse();
after(() => server.stop());

const redirectUri = "http://127.0.0.1:8765/callback";
const options = { [oauth.allowInsecureRequests]: true };

async function discover(): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(server.url);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...options, algorithm: "oauth2" }));
}

test("authorization code with PKCE, with oauth4webapi", async () => {
  const as = await discover();
  assert.equal(as.authorization_endpoint, `${server.url}/oauth/authorize`);
  assert.deepEqual(as.code_challenge_methods_supported, ["S256"]);
  assert.equal(as.authorization_response_iss_parameter_supported, true);
  const created = JSON.parse(
    admin(server, "client", "create", "--name", "Photo App", "--scope", "profile", "--redirect-uri", "http://127.0.0.1/callback"),
  ) as { client_id: string };
  const client: oauth.Client = { client_id: created.client_id };
  const username = await register(server.url);

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope: "profile",
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  }).toString();
  const back = new URL(await signInAt(url.href, username));

  // A mix-up: the same answer claiming another issuer is refused.
  const mixedUp = new URL(back);
  mixedUp.searchParams.set("iss", "https://attacker.example");
  assert.throws(() => oauth.validateAuthResponse(as, client, mixedUp, state));
  assert.throws(() => oauth.validateAuthResponse(as, client, back, "another state"));

  const params = oauth.validateAuthResponse(as, client, back, state);
  const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier, options);
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
  assert.equal(tokens.token_type, "bearer");
  assert.equal(tokens.scope, "profile");
  assert.ok(tokens.refresh_token);

  const me = await fetch(`${server.url}/users/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  assert.equal(((await me.json()) as { username: string }).username, username);

  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token!, options),
  );
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token);

  // The code was spent: redeeming it again is refused.
  const again = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier, options);
  await assert.rejects(oauth.processAuthorizationCodeResponse(as, client, again), (error: unknown) => {
    assert.ok(error instanceof oauth.ResponseBodyError, String(error));
    assert.equal(error.error, "invalid_grant");
    return true;
  });
});
