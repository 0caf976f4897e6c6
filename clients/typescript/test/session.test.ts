// The token manager against a live Gatehouse on SQLite.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { OAuthError, createGatehouse, type SignedOutReason } from "../src/index.js";
import { PASSWORD, recording, register, signedIn, startGatehouse, type Server } from "./server.js";

const FIFTEEN_MINUTES = 15 * 60_000;

describe("the token manager", () => {
  let server: Server;
  before(async () => {
    // Every session check reads the database, so a revocation shows at once.
    server = await startGatehouse("--session-check-ttl", "0s");
  });
  after(() => server.stop());

  test("refreshes ahead of expiry, so no request is sent with a token about to expire", async () => {
    let offset = 0;
    const wire = recording();
    const { api, session } = createGatehouse({
      baseUrl: server.url,
      fetch: wire.fetch,
      now: () => Date.now() + offset,
    });
    const first = signedIn(await session.signIn(await register(server.url), PASSWORD));
    assert.ok(Math.abs(first.expiresAt - Date.now() - FIFTEEN_MINUTES) < 5_000, "expiry from expires_in");
    assert.ok(Math.abs(first.skew) < 5_000, "one machine: no skew to speak of");

    assert.equal((await api.GET("/users/me")).response.status, 200);
    // 30 s before expiry by the client's clock: inside the 60 s margin.
    offset = FIFTEEN_MINUTES - 30_000;
    const me = await api.GET("/users/me");
    assert.equal(me.response.status, 200);
    const grants = wire.sent.map((r) => r.grant).filter(Boolean);
    assert.deepEqual(grants, ["password", "refresh_token"]);
    const last = wire.sent.at(-1)!;
    const current = await session.current();
    assert.notEqual(current!.accessToken, first.accessToken);
    assert.equal(last.authorization, `Bearer ${current!.accessToken}`);
    assert.ok(wire.sent.every((r) => r.status !== 401));
  });

  test("fifty concurrent calls that need a fresh token share exactly one refresh", async () => {
    let offset = 0;
    const wire = recording();
    const { api, session } = createGatehouse({
      baseUrl: server.url,
      fetch: wire.fetch,
      now: () => Date.now() + offset,
    });
    await session.signIn(await register(server.url), PASSWORD);
    offset = FIFTEEN_MINUTES; // expired, by the client's clock
    const replies = await Promise.all(Array.from({ length: 50 }, () => api.GET("/users/me")));
    assert.deepEqual(
      replies.map((r) => r.response.status),
      Array(50).fill(200),
    );
    const refreshes = wire.sent.filter((r) => r.grant === "refresh_token");
    assert.equal(refreshes.length, 1, "one refresh request on the wire");
    const token = (await session.current())!.accessToken;
    assert.ok(wire.sent.filter((r) => r.path === "/users/me").every((r) => r.authorization === `Bearer ${token}`));
  });

  test("a logout elsewhere signs the session out once, without a retry loop", async () => {
    const wire = recording();
    const { api, session } = createGatehouse({ baseUrl: server.url, fetch: wire.fetch });
    const events: SignedOutReason[] = [];
    session.on("signedOut", (reason) => events.push(reason));
    const username = await register(server.url);
    await session.signIn(username, PASSWORD);
    assert.equal((await api.GET("/users/me")).response.status, 200);

    // The same user, on another device, logs out everywhere.
    const other = createGatehouse({ baseUrl: server.url });
    await other.session.signIn(username, PASSWORD);
    assert.equal((await other.api.POST("/auth/logout-all")).response.status, 204);

    const refused = await api.GET("/users/me");
    assert.equal(refused.response.status, 401);
    assert.equal(refused.error?.error, "invalid_token");
    assert.deepEqual(events, ["invalid_grant"]);
    assert.equal(await session.current(), null);
    // One probe of the session (a refused refresh), no retry of the call.
    assert.equal(wire.sent.filter((r) => r.grant === "refresh_token").length, 1);
    assert.equal(wire.sent.filter((r) => r.path === "/users/me").length, 2);

    // Signed out: calls go without a token, and nothing refreshes.
    const anonymous = await api.GET("/users/me");
    assert.equal(anonymous.response.status, 401);
    assert.equal(wire.sent.at(-1)!.authorization, null);
    assert.equal(wire.sent.filter((r) => r.grant === "refresh_token").length, 1);
    assert.deepEqual(events, ["invalid_grant"]);
  });

  test("a refused token is retried once, after a refresh shows the session alive", async () => {
    const wire = recording();
    const { api, session } = createGatehouse({ baseUrl: server.url, fetch: wire.fetch });
    await session.signIn(await register(server.url), PASSWORD);
    const tokens = (await session.current())!;
    // A token the server refuses (tampered) stands in for a stale one.
    await session.storage.set({ ...tokens, accessToken: `${tokens.accessToken}x` });
    const me = await api.GET("/users/me");
    // Refused once, the session proved alive by one refresh, retried once.
    assert.equal(me.response.status, 200);
    assert.deepEqual(
      wire.sent.slice(1).map((r) => [r.path, r.status]),
      [
        ["/users/me", 401],
        ["/oauth/token", 200],
        ["/users/me", 200],
      ],
    );
  });

  test("a refresh whose answer arrives after sign-out is discarded", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const { session } = createGatehouse({
      baseUrl: server.url,
      fetch: async (request) => {
        const body = request.method === "POST" ? await request.clone().text() : "";
        const response = await fetch(request);
        if (body.includes("grant_type=refresh_token")) await held;
        return response;
      },
    });
    const tokens: string[] = [];
    await session.signIn(await register(server.url), PASSWORD);
    session.on("tokens", (t) => tokens.push(t.refreshToken));
    const refreshing = session.refresh();
    // Let the refresh reach the server, then sign out while its answer is held.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await session.signOut();
    release();
    assert.equal(await refreshing, null);
    assert.equal(await session.current(), null);
    assert.deepEqual(tokens, []);
  });

  test("invalid_grant on refresh is a signedOut event, and a typed OAuthError reaches callers of signIn", async () => {
    const { session } = createGatehouse({ baseUrl: server.url });
    const username = await register(server.url);
    await assert.rejects(session.signIn(username, "not the password"), (error: unknown) => {
      assert.ok(error instanceof OAuthError);
      assert.equal(error.status, 400);
      assert.equal(error.error, "invalid_grant");
      return true;
    });
    const tokens = signedIn(await session.signIn(username, PASSWORD));
    const events: SignedOutReason[] = [];
    session.on("signedOut", (reason) => events.push(reason));
    // The refresh token is revoked behind the client's back.
    const revoked = await fetch(`${server.url}/oauth/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: tokens.refreshToken }),
    });
    assert.equal(revoked.status, 200);
    assert.equal(await session.refresh(), null);
    assert.equal(await session.refresh(), null);
    assert.deepEqual(events, ["invalid_grant"]);
  });
});

describe("retries", () => {
  let server: Server;
  before(async () => {
    // One free failure; then each failed login blocks the account 1 s, 2 s…
    server = await startGatehouse("--login-free-failures", "1");
  });
  after(() => server.stop());

  test("a 429 with Retry-After is waited out and retried", async () => {
    const wire = recording();
    const waits: number[] = [];
    const { session } = createGatehouse({
      baseUrl: server.url,
      fetch: wire.fetch,
      retry: {
        // Records the wait, and waits it: the server's block runs on its clock.
        sleep: (ms) => {
          waits.push(ms);
          return new Promise((resolve) => setTimeout(resolve, ms));
        },
      },
    });
    const username = await register(server.url);
    // Two failures: the account is blocked for a second.
    for (let i = 0; i < 2; i++) {
      await assert.rejects(session.signIn(username, "not the password"));
    }
    const before = wire.sent.length;
    await session.signIn(username, PASSWORD);
    const attempts = wire.sent.slice(before).map((r) => r.status);
    assert.equal(attempts[0], 429, "the login after them is throttled");
    assert.equal(attempts.at(-1), 200);
    assert.ok(attempts.slice(0, -1).every((status) => status === 429), String(attempts));
    assert.ok(waits.every((ms) => ms >= 1000), `waited as Retry-After asked: ${waits}`);
  });

  test("a Retry-After longer than the cap is not waited for: the typed error says how long", async () => {
    const { session } = createGatehouse({ baseUrl: server.url, retry: { maxDelay: 0 } });
    const username = await register(server.url);
    for (let i = 0; i < 2; i++) {
      await session.signIn(username, "not the password").catch(() => {});
    }
    await assert.rejects(session.signIn(username, PASSWORD), (error: unknown) => {
      assert.ok(error instanceof OAuthError || (error as { status?: number }).status === 429, String(error));
      assert.equal((error as { status: number }).status, 429);
      assert.ok(((error as { retryAfter?: number }).retryAfter ?? 0) >= 1);
      return true;
    });
  });
});
