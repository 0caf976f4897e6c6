// Walks Gatehouse's login flow through a client generated from the committed
// spec. A wrong response shape fails at runtime; a wrong spec fails `tsc`.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import createClient from "openapi-fetch";
import type { components, paths } from "../src/schema.js";
import { startGatehouse } from "./server.js";

type OAuthError = components["schemas"]["OAuthError"];
type ApiError = components["schemas"]["ApiError"];
type TokenResponse = components["schemas"]["TokenResponse"];
type User = components["schemas"]["User"];

// Fails to compile if a generated response type collapses to `never`
// (as it does when a generator cannot read the declared media type).
type IsNever<T> = [T] extends [never] ? true : false;
function typed<T>(value: T, _notNever: IsNever<T> extends true ? "is never" : true): T {
  return value;
}

function isOAuthError(body: OAuthError | ApiError | undefined): body is OAuthError {
  return body !== undefined && "error_description" in body;
}

const server = await startGatehouse();
after(() => server.stop());

test("the generated client walks register, token, me, refresh, logout", async () => {
const client = createClient<paths>({ baseUrl: server.url });
const username = `sdk_${Date.now().toString(36)}`;
const password = "correct horse battery staple";

// Register.
const registered = await client.POST("/users", {
  body: { username, password, email: `${username}@example.org` },
});
assert.equal(registered.response.status, 201, JSON.stringify(registered.error));
const user: User = typed(registered.data!, true);
assert.equal(user.username, username);
assert.equal(user.email, `${username}@example.org`);

// Log in with the OAuth2 password grant, form-encoded, as RFC 6749 has it.
const granted = await client.POST("/oauth/token", {
  body: { grant_type: "password", username, password, scope: "" },
  bodySerializer: (body) =>
    new URLSearchParams(
      Object.entries(body).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
    ),
  headers: { "Content-Type": "application/x-www-form-urlencoded" },
});
assert.equal(granted.response.status, 200, JSON.stringify(granted.error));
assert.equal(granted.response.headers.get("cache-control"), "no-store");
const tokens: TokenResponse = typed(granted.data!, true);
assert.equal(tokens.token_type, "Bearer");
// A user's grant always holds a refresh token (only a client's own
// client-credentials token has none): the spec has it optional.
assert.ok(tokens.refresh_token !== undefined);
assert.equal(tokens.scope, "profile");

// Who am I?
const me = await client.GET("/users/me", {
  headers: { Authorization: `Bearer ${tokens.access_token}` },
});
assert.equal(me.response.status, 200, JSON.stringify(me.error));
assert.equal(typed(me.data!, true).id, user.id);

// Without a token: 401 with the typed ApiError and a Bearer challenge that
// names no error (RFC 6750 §3.1).
const anonymous = await client.GET("/users/me");
assert.equal(anonymous.response.status, 401);
assert.equal(anonymous.error?.error, "invalid_token");
assert.equal(anonymous.response.headers.get("www-authenticate"), 'Bearer realm="gatehouse"');

// Refresh (JSON): a new pair.
const refreshed = await client.POST("/auth/refresh", {
  body: { refresh_token: tokens.refresh_token },
});
assert.equal(refreshed.response.status, 200, JSON.stringify(refreshed.error));
const next: TokenResponse = typed(refreshed.data!, true);
assert.ok(next.refresh_token !== undefined);
assert.notEqual(next.refresh_token, tokens.refresh_token);

// Log out: 204, no body.
const loggedOut = await client.POST("/auth/logout", {
  body: { refresh_token: next.refresh_token },
});
assert.equal(loggedOut.response.status, 204);

// The refresh token is dead: 400 with the typed OAuthError.
const rejected = await client.POST("/auth/refresh", {
  body: { refresh_token: next.refresh_token },
});
assert.equal(rejected.response.status, 400);
assert.ok(isOAuthError(rejected.error), JSON.stringify(rejected.error));
const oauthError: OAuthError = rejected.error;
assert.equal(oauthError.error, "invalid_grant");
assert.ok(oauthError.error_description.length > 0);

});
