// Requests on a network that stops answering: every request has a deadline
// (and honours the caller's AbortSignal), and a refresh that times out keeps
// the session and its still-valid access token.
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { ApiError, createGatehouse } from "../src/index.js";
import { PASSWORD, register, signedIn, startGatehouse, type Server } from "./server.js";

let server: Server;
let stalled: { url: string; close: () => void };
before(async () => {
  server = await startGatehouse();
  // Accepts connections and never answers, as a stalled network does.
  const sockets: Socket[] = [];
  const silent = createServer((socket) => void sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const address = silent.address();
  stalled = {
    url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`,
    close: () => {
      sockets.forEach((socket) => socket.destroy());
      silent.close();
    },
  };
});
after(async () => {
  stalled.close();
  await server.stop();
});

test("a request that gets no answer fails with a timeout at its deadline, not never", { timeout: 10_000 }, async () => {
  const { session } = createGatehouse({ baseUrl: stalled.url, retry: { deadline: 300 } });
  const started = Date.now();
  await assert.rejects(session.signIn("alice", PASSWORD), (error: unknown) => {
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.code, "timeout");
    return true;
  });
  const took = Date.now() - started;
  assert.ok(took >= 250 && took < 3_000, `gave up at the deadline: ${took} ms`);
});

test("the caller's own AbortSignal is honoured before the deadline", { timeout: 10_000 }, async () => {
  const { api } = createGatehouse({ baseUrl: stalled.url, retry: { deadline: 10_000 } });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  const started = Date.now();
  await assert.rejects(api.GET("/health/live", { signal: controller.signal }), (error: unknown) => {
    assert.equal((error as { name?: string }).name, "AbortError", String(error));
    return true;
  });
  assert.ok(Date.now() - started < 3_000, "aborted, not timed out");
});

test("a refresh that times out keeps the session and its still-valid access token", { timeout: 20_000 }, async () => {
  let stall = false;
  let offset = 0;
  const refreshes: string[] = [];
  const { api, session } = createGatehouse({
    baseUrl: server.url,
    retry: { deadline: 300 },
    now: () => Date.now() + offset,
    fetch: (request) => {
      if (new URL(request.url).pathname === "/oauth/token" && refreshes.push(stall ? "stalled" : "sent") && stall) {
        return new Promise((_, reject) => request.signal.addEventListener("abort", () => reject(request.signal.reason)));
      }
      return globalThis.fetch(request);
    },
  });
  const signedOut: string[] = [];
  session.on("signedOut", (reason) => signedOut.push(reason));
  const username = await register(server.url);
  const first = signedIn(await session.signIn(username, PASSWORD));

  // 30 s before the access token expires: inside the refresh margin, and
  // the network stalls.
  stall = true;
  offset = first.expiresAt - Date.now() - 30_000;
  const me = await api.GET("/users/me");
  assert.equal(me.response.status, 200, "the still-valid token was used");
  assert.equal((await session.current())?.refreshToken, first.refreshToken, "the session is kept");
  assert.deepEqual(signedOut, []);
  assert.deepEqual(refreshes, ["sent", "stalled"], "one refresh tried, no flood");

  stall = false;
  assert.equal((await api.GET("/users/me")).response.status, 200);
  assert.notEqual((await session.current())?.refreshToken, first.refreshToken, "refreshed once back");
  assert.deepEqual(signedOut, []);
});
