// A tab frozen while it holds the refresh lock (the Page Lifecycle freeze,
// through CDP), in Debian's Chromium: the other tab waits for the lock no
// longer than the deadline and a second, then refreshes on its own. When
// the frozen tab wakes it takes the other tab's tokens from storage and
// never turns the stale refresh token into a reuse.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { extname, join } from "node:path";
import { chromium } from "playwright-core";
import { PASSWORD, register, startGatehouse } from "../test/server.js";

const root = new URL("../..", import.meta.url).pathname; // clients/typescript
// A hang is a failure, not a stuck CI job.
setTimeout(() => {
  console.error(`${process.argv[1]}: no end after 90 s`);
  process.exit(1);
}, 90_000).unref();
const gatehouse = await startGatehouse();
const grants: { grant: string | null; status: number; refreshToken: string | null; presented: string | null }[] = [];
/** Refresh requests still to stall (accept, never answer). */
let stall = 0;
/** The stalled answers, to cut when the test says. */
const held: ServerResponse[] = [];
const stalled: (string | null)[] = [];

const page = `<!doctype html><meta charset="utf-8"><title>Gatehouse SDK</title>
<script type="importmap">{"imports": {"openapi-fetch": "/vendor/openapi-fetch/index.mjs"}}</script>
<script type="module">
  import * as sdk from "/sdk/index.js";
  window.sdk = sdk;
  window.offset = 0;
  const params = new URLSearchParams(location.search);
  window.gh = sdk.createGatehouse({ baseUrl: location.origin, storage: new sdk.LocalStorageStorage(),
    now: () => Date.now() + window.offset,
    retry: { deadline: Number(params.get("deadline") ?? 2000) }, lockWait: Number(params.get("lockWait") ?? 3000) });
  window.timed = async () => {
    const started = Date.now();
    const status = await window.me();
    return { status, ms: Date.now() - started };
  };
  window.events = [];
  window.gh.session.on("signedOut", (reason) => window.events.push("signedOut:" + reason));
  window.me = () => window.gh.api.GET("/users/me").then((r) => String(r.response.status), (e) => "error:" + e.name);
  window.ready = true;
</script>`;

const types: Record<string, string> = { ".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json" };

async function serveFile(res: ServerResponse, path: string): Promise<void> {
  try {
    const body = await readFile(path);
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// The page, the SDK and openapi-fetch, and everything else proxied to
// Gatehouse: one origin, as an app serving its API behind its own host.
const origin = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://origin");
  if (url.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html" }).end(page);
  } else if (url.pathname.startsWith("/sdk/")) {
    await serveFile(res, join(root, "dist", url.pathname.slice(5)));
  } else if (url.pathname.startsWith("/vendor/openapi-fetch/")) {
    await serveFile(res, join(root, "node_modules/openapi-fetch/dist", url.pathname.slice(22)));
  } else {
    const sent = await body(req);
    const form = new URLSearchParams(sent.toString());
    if (stall > 0 && url.pathname === "/oauth/token" && form.get("grant_type") === "refresh_token") {
      stall--;
      // Accepted, never answered: the client's deadline is all that ends it.
      stalled.push(form.get("refresh_token"));
      held.push(res);
      return;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === "string" && !["host", "connection", "content-length"].includes(name)) headers[name] = value;
    }
    const init: RequestInit = { method: req.method ?? "GET", headers };
    if (sent.length > 0) init.body = new Uint8Array(sent);
    const answer = await fetch(`${gatehouse.url}${url.pathname}${url.search}`, init);
    const text = await answer.text();
    if (url.pathname === "/oauth/token") {
      const grant = new URLSearchParams(sent.toString()).get("grant_type");
      const refreshToken = answer.ok ? (JSON.parse(text) as { refresh_token: string }).refresh_token : null;
      grants.push({ grant, status: answer.status, refreshToken, presented: new URLSearchParams(sent.toString()).get("refresh_token") });
    }
    const out: Record<string, string> = {};
    answer.headers.forEach((value, name) => {
      if (!["content-length", "content-encoding", "transfer-encoding", "connection"].includes(name)) out[name] = value;
    });
    res.writeHead(answer.status, out).end(text);
  }
});
await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
const address = origin.address();
const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

const DEADLINE = 2000;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const context = await browser.newContext();
  const open = async (query: string) => {
    const tab = await context.newPage();
    tab.on("pageerror", (error) => console.error("page error:", error));
    await tab.goto(`${base}/?${query}`);
    await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    return tab;
  };
  // The tab that will sleep holds the lock for as long as its refresh can
  // last (a long deadline); the other waits for the lock 3 s at most.
  const sleeper = await open("deadline=60000");
  const other = await open(`deadline=${DEADLINE}&lockWait=3000`);
  const username = await register(gatehouse.url);
  const signedIn = await sleeper.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password),
    [username, PASSWORD] as const,
  );
  for (const tab of [sleeper, other]) {
    await tab.evaluate((expiresAt) => {
      (window as any).offset = expiresAt - Date.now() - 30_000;
    }, signedIn.expiresAt);
  }
  const refreshes = () => grants.filter((g) => g.grant === "refresh_token");

  // The first tab takes the lock for a refresh that stalls, and is frozen
  // holding it.
  stall = 1;
  await sleeper.evaluate(() => {
    (window as any).pending = (window as any).timed();
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(stalled.length, 1, "the first tab's refresh is on the wire");
  const cdp = await context.newCDPSession(sleeper);
  await cdp.send("Page.setWebLifecycleState", { state: "frozen" });

  // The other tab is not held up for longer than the lock bound.
  const started = Date.now();
  const call = await other.evaluate(() => (window as any).timed());
  assert.equal(call.status, "200");
  assert.ok(Date.now() - started < 3000 + 2000, `waited ${Date.now() - started} ms`);
  assert.equal(refreshes().length, 1, "the other tab refreshed on its own");
  assert.equal(refreshes()[0]!.status, 200);
  const rotated = refreshes()[0]!.refreshToken;

  // The frozen tab wakes: it uses the other tab's tokens, and never sends
  // the stale refresh token.
  await cdp.send("Page.setWebLifecycleState", { state: "active" });
  // Its stalled request ends (the connection drops) as it wakes.
  held.forEach((res) => res.destroy());
  const woke = await sleeper.evaluate(() => (window as any).pending);
  assert.equal(woke.status, "200");
  assert.equal(await sleeper.evaluate(() => (window as any).me()), "200");
  const current = await sleeper.evaluate(() => (window as any).gh.session.current());
  assert.equal(current?.refreshToken, rotated, "the frozen tab holds the other tab's tokens");
  // No reuse reached the server: every refresh got the one successor (the
  // browser itself may resend the stalled request once its connection
  // drops; the server's grace window answers that with the same successor).
  assert.ok(
    refreshes().every((g) => g.status === 200 && g.refreshToken === rotated),
    `no reuse of the stale token: ${JSON.stringify(refreshes())}`,
  );
  for (const tab of [sleeper, other]) {
    assert.deepEqual(await tab.evaluate(() => (window as any).events), [], "nobody signed out");
  }
  console.log(
    `frozen tab: the other tab refreshed after ${call.ms} ms without the lock; the frozen one woke on its tokens; ` +
      `${refreshes().length} refresh(es) reached the server, none a reuse`,
  );
} finally {
  await browser.close();
  origin.close();
  await gatehouse.stop();
}
