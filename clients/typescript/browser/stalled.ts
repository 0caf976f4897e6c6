// A stalled refresh, in Debian's Chromium, two tabs: the proxy (this
// script's origin server) accepts refresh requests and never answers them.
// Each tab gives up at its deadline and keeps using its still-valid access
// token; the second tab never waits on the first's lock for longer than the
// deadline and a second; nobody is signed out. Once the network answers
// again, one refresh (of the same refresh token) rotates the session.
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
let stall = false;
const stalled: (string | null)[] = [];

const page = `<!doctype html><meta charset="utf-8"><title>Gatehouse SDK</title>
<script type="importmap">{"imports": {"openapi-fetch": "/vendor/openapi-fetch/index.mjs"}}</script>
<script type="module">
  import * as sdk from "/sdk/index.js";
  window.sdk = sdk;
  window.offset = 0;
  window.gh = sdk.createGatehouse({ baseUrl: location.origin, storage: new sdk.LocalStorageStorage(),
    now: () => Date.now() + window.offset, retry: { deadline: 2000 } });
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
    if (stall && url.pathname === "/oauth/token" && form.get("grant_type") === "refresh_token") {
      // Accepted, never answered: the client's deadline is all that ends it.
      stalled.push(form.get("refresh_token"));
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
  const open = async () => {
    const tab = await context.newPage();
    tab.on("pageerror", (error) => console.error("page error:", error));
    await tab.goto(base);
    await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    return tab;
  };
  const first = await open();
  const second = await open();
  const username = await register(gatehouse.url);
  const signedIn = await first.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password),
    [username, PASSWORD] as const,
  );
  const refreshes = () => grants.filter((g) => g.grant === "refresh_token");

  // Both tabs' clocks 30 s before the access token expires: every call wants
  // a refresh first; and refreshes stall.
  for (const tab of [first, second]) {
    await tab.evaluate((expiresAt) => {
      (window as any).offset = expiresAt - Date.now() - 30_000;
    }, signedIn.expiresAt);
  }
  stall = true;
  const [a, b] = await Promise.all([first, second].map((tab) => tab.evaluate(() => (window as any).timed())));
  assert.equal(a.status, "200", "the still-valid token was used");
  assert.equal(b.status, "200");
  // Each waited at most for its own stalled refresh, plus the other's lock
  // (bounded by the deadline and a second).
  for (const { ms } of [a, b]) assert.ok(ms < 2 * DEADLINE + 1000 + 1500, `took ${ms} ms`);
  assert.ok(stalled.length >= 1 && stalled.length <= 2, `stalled refreshes: ${stalled.length}`);
  assert.ok(stalled.every((token) => token === signedIn.refreshToken), "the same refresh token");
  assert.equal(refreshes().length, 0, "nothing reached the server");
  for (const tab of [first, second]) {
    assert.deepEqual(await tab.evaluate(() => (window as any).events), [], "nobody signed out");
  }

  stall = false;
  assert.equal((await first.evaluate(() => (window as any).timed())).status, "200");
  assert.equal((await second.evaluate(() => (window as any).timed())).status, "200");
  assert.equal(refreshes().length, 1, `one refresh once answered: ${JSON.stringify(refreshes())}`);
  assert.equal(refreshes()[0]!.status, 200);
  assert.equal(refreshes()[0]!.presented, signedIn.refreshToken, "the same refresh token, retried");
  for (const tab of [first, second]) {
    assert.deepEqual(await tab.evaluate(() => (window as any).events), []);
  }
  console.log(
    `stalled refresh: ${stalled.length} stalled attempt(s) given up at the deadline (${a.ms} ms, ${b.ms} ms), ` +
      "nobody signed out, one refresh of the same token once answered",
  );
} finally {
  await browser.close();
  origin.close();
  await gatehouse.stop();
}
