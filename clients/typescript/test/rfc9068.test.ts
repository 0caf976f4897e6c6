// Access tokens from every kind of login validate under RFC 9068 with a strict
// third-party library (panva's oauth4webapi), configured from RFC 8414
// discovery and the JWKS alone.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as oauth from "oauth4webapi";
import { PASSWORD, admin, register, startGatehouse, type Server } from "./server.js";

let server: Server;
before(async () => {
  server = await startGatehouse();
});
after(() => server.stop());

async function login(fields: Record<string, string>, authorization?: string): Promise<string> {
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
  if (authorization) headers.authorization = authorization;
  const response = await fetch(`${server.url}/oauth/token`, {
    method: "POST",
    headers,
    body: new URLSearchParams({ grant_type: "password", password: PASSWORD, ...fields }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { access_token: string }).access_token;
}

async function validate(accessToken: string): Promise<oauth.JWTAccessTokenClaims> {
  const issuer = new URL(server.url);
  const discovery = await oauth.discoveryRequest(issuer, {
    algorithm: "oauth2",
    [oauth.allowInsecureRequests]: true,
  });
  const as = await oauth.processDiscoveryResponse(issuer, discovery);
  const request = new Request(`${server.url}/users/me`, {
    headers: { authorization: `Bearer ${accessToken}` },
  });
  return oauth.validateJwtAccessToken(as, request, "gatehouse", {
    [oauth.allowInsecureRequests]: true,
  });
}

test("a login that sends no client_id gets a token that validates, naming the default client", async () => {
  const username = await register(server.url);
  // As the README's curl walk-through logs in.
  const claims = await validate(await login({ username }));
  assert.equal(claims.client_id, "gatehouse");
  assert.equal(typeof claims.auth_time, "number");
  // As Swagger UI does with its client fields left blank.
  const blank = await validate(await login({ username, scope: "", client_id: "" }, "Basic Og=="));
  assert.equal(blank.client_id, "gatehouse");
});

test("a login that names its client gets that client in the token", async () => {
  const username = await register(server.url);
  // A public client, registered as `gatehouse client create` does.
  admin(server, "client", "create", "--name", "Web app", "--client-id", "web-app",
    "--grant-type", "password", "--scope", "profile");
  const claims = await validate(await login({ username, client_id: "web-app" }));
  assert.equal(claims.client_id, "web-app");
  assert.equal(claims.iss, server.url);
  assert.equal(claims.aud, "gatehouse");
});
