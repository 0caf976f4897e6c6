// Offline during a refresh, in Debian's Chromium (Playwright's setOffline):
// the session is kept and no sign-out happens; back online, the SDK
// refreshes once and calls succeed. The page's clock runs ahead by a
// variable the test sets, so the access token is inside its refresh margin
// without waiting.
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
const grants: { grant: string | null; status: number; refreshToken: string | null }[] = [];

const page = `<!doctype html><meta charset="utf-8"><title>Gatehouse SDK</title>
<script type="importmap">{"imports": {"openapi-fetch": "/vendor/openapi-fetch/index.mjs"}}</script>
<script type="module">
  import * as sdk from "/sdk/index.js";
  window.sdk = sdk;
  window.offset = 0;
  window.gh = sdk.createGatehouse({ baseUrl: location.origin, storage: new sdk.LocalStorageStorage(),
    now: () => Date.now() + window.offset, retry: { deadline: 2000 } });
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
      grants.push({ grant, status: answer.status, refreshToken });
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

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const context = await browser.newContext();
  const tab = await context.newPage();
  tab.on("pageerror", (error) => console.error("page error:", error));
  await tab.goto(base);
  await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  const username = await register(gatehouse.url);
  const first = await tab.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password),
    [username, PASSWORD] as const,
  );
  assert.equal(await tab.evaluate(() => (window as any).me()), "200");
  const refreshes = () => grants.filter((g) => g.grant === "refresh_token");

  // 30 s before the access token expires by the page's clock, the network goes.
  await tab.evaluate((expiresAt) => {
    (window as any).offset = expiresAt - Date.now() - 30_000;
  }, first.expiresAt);
  await context.setOffline(true);
  const offline = await tab.evaluate(() => (window as any).me());
  assert.match(offline, /^error:/, "no network, no answer");
  const kept = await tab.evaluate(() => (window as any).gh.session.current());
  assert.equal(kept?.refreshToken, first.refreshToken, "the session is kept");
  assert.deepEqual(await tab.evaluate(() => (window as any).events), [], "no sign-out");
  assert.equal(refreshes().length, 0, "nothing reached the server");

  await context.setOffline(false);
  assert.equal(await tab.evaluate(() => (window as any).me()), "200");
  assert.equal(refreshes().length, 1, `one refresh once back: ${JSON.stringify(refreshes())}`);
  assert.equal(refreshes()[0]!.status, 200);
  assert.equal(await tab.evaluate(() => (window as any).me()), "200");
  assert.equal(refreshes().length, 1, "and no more");
  assert.deepEqual(await tab.evaluate(() => (window as any).events), []);
  console.log("offline: session kept through the outage, one refresh once back, calls succeed");
} finally {
  await browser.close();
  origin.close();
  await gatehouse.stop();
}
