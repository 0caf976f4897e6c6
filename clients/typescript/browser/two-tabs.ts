// Two tabs of one origin share a session (localStorage) and refresh at the
// same moment, in Debian's Chromium: both stay signed in, and the server sees
// one rotation (or a grace replay of it), never a reuse. Then one tab signs
// out, and the other hears of it.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { extname, join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { PASSWORD, register, startGatehouse } from "../test/server.js";

const root = new URL("../..", import.meta.url).pathname; // clients/typescript
const gatehouse = await startGatehouse();
const grants: { grant: string | null; status: number; refreshToken: string | null }[] = [];

const page = `<!doctype html><meta charset="utf-8"><title>Gatehouse SDK</title>
<script type="importmap">{"imports": {"openapi-fetch": "/vendor/openapi-fetch/index.mjs"}}</script>
<script type="module">
  import * as sdk from "/sdk/index.js";
  window.sdk = sdk;
  window.gh = sdk.createGatehouse({ baseUrl: location.origin, storage: new sdk.LocalStorageStorage() });
  window.events = [];
  window.gh.session.on("signedOut", (reason) => window.events.push("signedOut:" + reason));
  window.gh.session.on("tokens", () => window.events.push("tokens"));
  new BroadcastChannel("test-go").onmessage = async () => {
    const seen = await window.gh.session.current();
    window.refreshed = window.gh.session.refresh(seen).then((t) => t && t.refreshToken);
  };
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
  const open = async (): Promise<Page> => {
    const tab = await context.newPage();
    tab.on("pageerror", (error) => console.error("page error:", error));
    await tab.goto(base);
    await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    return tab;
  };
  const first = await open();
  const second = await open();

  const username = await register(gatehouse.url);
  await first.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password).then(() => undefined),
    [username, PASSWORD] as const,
  );
  const me = (tab: Page) =>
    tab.evaluate(() => (window as any).gh.api.GET("/users/me").then((r: any) => r.response.status as number));
  assert.equal(await me(second), 200, "the second tab shares the session through localStorage");

  // Both tabs refresh at the same moment: one message wakes both.
  await first.evaluate(() => new BroadcastChannel("test-go").postMessage("go"));
  const results = await Promise.all(
    [first, second].map((tab) =>
      tab.waitForFunction(() => (window as any).refreshed !== undefined).then(() => tab.evaluate(() => (window as any).refreshed)),
    ),
  );
  const refreshes = grants.filter((g) => g.grant === "refresh_token");
  assert.ok(refreshes.length === 1 || refreshes.length === 2, JSON.stringify(refreshes));
  assert.ok(refreshes.every((g) => g.status === 200), `no refresh refused: ${JSON.stringify(refreshes)}`);
  // One rotation: every answer carries the same successor (a second request
  // would be the grace window's replay of it).
  assert.equal(new Set(refreshes.map((g) => g.refreshToken)).size, 1);
  assert.equal(results[0], results[1], "both tabs hold the one successor");
  assert.equal(results[0], refreshes[0]!.refreshToken);
  assert.equal(await me(first), 200);
  assert.equal(await me(second), 200);

  // The session lives on: a later refresh is no reuse.
  await second.evaluate(() => (window as any).gh.session.refresh().then(() => undefined));
  assert.equal(grants.at(-1)!.status, 200);
  assert.equal(await me(first), 200);

  // One tab signs out; the other hears of it.
  await first.evaluate(() => (window as any).gh.session.signOut());
  await second.waitForFunction(() => (window as any).events.includes("signedOut:elsewhere"));
  assert.equal(await me(second), 401);
  console.log(
    `two tabs: ${refreshes.length} refresh request(s) on the wire for one rotation; both signed in; sign-out reached the other tab`,
  );
} finally {
  await browser.close();
  origin.close();
  await gatehouse.stop();
}
