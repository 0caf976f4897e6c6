// Redirect sign-in (authorization code with PKCE) against a live Gatehouse:
// the SDK starts it, the test plays the browser on Gatehouse's sign-in page
// (a cookie jar and form posts), and the SDK finishes it on the callback.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { OAuthError, createGatehouse, type PendingStorage } from "../src/index.js";
import { admin, register, signInAt, startGatehouse } from "./server.js";

const server = await startGatehouse();
after(() => server.stop());

const CALLBACK = "http://127.0.0.1:5173/callback";

function client(firstParty: boolean): string {
  const flags = ["client", "create", "--name", "Web App", "--scope", "profile", "--redirect-uri", "http://127.0.0.1/callback"];
  if (firstParty) flags.push("--first-party");
  return (JSON.parse(admin(server, ...flags)) as { client_id: string }).client_id;
}

class MapStorage implements PendingStorage {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

test("a redirect sign-in with PKCE ends with a session the token manager keeps", async () => {
  const username = await register(server.url);
  const pending = new MapStorage();
  const gh = createGatehouse({ baseUrl: server.url, clientId: client(true), pendingStorage: pending });
  let went = "";
  const url = await gh.session.signInWithRedirect({ redirectUri: CALLBACK, navigate: (to) => (went = to) });
  assert.equal(went, url);
  const sent = new URL(url).searchParams;
  assert.equal(sent.get("code_challenge_method"), "S256");
  assert.equal(pending.items.size, 1, "the verifier waits in pendingStorage");

  const back = await signInAt(url, username);
  assert.ok(back.startsWith(`${CALLBACK}?`), back);
  const tokens = await gh.session.handleRedirectCallback(back);
  assert.equal(pending.items.size, 0, "used once");
  assert.ok(tokens.refreshToken.length > 0);
  const me = await gh.api.GET("/users/me");
  assert.equal(me.data?.username, username);
  const refreshed = await gh.session.refresh(tokens);
  assert.notEqual(refreshed?.refreshToken, tokens.refreshToken, "it rotates like any session");

  // The same answer again (a reload of the callback page): its state is spent.
  await assert.rejects(gh.session.handleRedirectCallback(back), (error: unknown) => {
    assert.ok(error instanceof OAuthError && error.error === "invalid_request", String(error));
    return true;
  });
});

test("an answer this tab did not ask for, or from another issuer, is refused", async () => {
  const username = await register(server.url);
  const gh = createGatehouse({ baseUrl: server.url, clientId: client(true), pendingStorage: new MapStorage() });
  const url = await gh.session.signInWithRedirect({ redirectUri: CALLBACK, navigate: () => {} });
  const back = new URL(await signInAt(url, username));
  const forged = new URL(back);
  forged.searchParams.set("state", "not-the-one-sent");
  await assert.rejects(gh.session.handleRedirectCallback(forged.href), OAuthError);
  const mixedUp = new URL(back);
  mixedUp.searchParams.set("iss", "https://attacker.example");
  await assert.rejects(gh.session.handleRedirectCallback(mixedUp.href), OAuthError);
  assert.equal(await gh.session.current(), null, "not signed in");
});

test("a user who denies the app gets access_denied as an OAuthError", async () => {
  const username = await register(server.url);
  const gh = createGatehouse({ baseUrl: server.url, clientId: client(false), pendingStorage: new MapStorage() });
  const url = await gh.session.signInWithRedirect({ redirectUri: CALLBACK, navigate: () => {} });
  const back = await signInAt(url, username, "deny");
  await assert.rejects(gh.session.handleRedirectCallback(back), (error: unknown) => {
    assert.ok(error instanceof OAuthError, String(error));
    assert.equal(error.error, "access_denied");
    return true;
  });
});
