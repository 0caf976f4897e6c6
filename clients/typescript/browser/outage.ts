// Waking past expiry, and an outage, in Debian's Chromium:
// - a tab whose clock jumped past its access token's expiry (a laptop that
//   slept, a background tab whose timers were throttled) refreshes before
//   its first call, which carries the new token: no dead token is sent;
// - refreshes answered 503 with `Retry-After: 1` are waited out and
//   retried; a longer outage (`Retry-After` past the cap) reaches the app as
//   a typed `ApiError` it can show, and never signs the user out.
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
/** `Retry-After` of the next refreshes to answer 503 (one each). */
let outage: number[] = [];
const answered503: number[] = [];
/** The Authorization header of each GET /users/me. */
const bearers: (string | null)[] = [];

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
  window.me = () => window.gh.api.GET("/users/me").then((r) => String(r.response.status),
    (e) => "error:" + e.name + ":" + (e.code ?? "") + ":" + (e.status ?? "") + ":" + (e.retryAfter ?? ""));
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
    if (outage.length > 0 && url.pathname === "/oauth/token" && form.get("grant_type") === "refresh_token") {
      const retryAfter = outage.shift()!;
      answered503.push(retryAfter);
      res
        .writeHead(503, { "content-type": "application/json", "retry-after": String(retryAfter), "cache-control": "no-store" })
        // As Gatehouse answers when its database is down.
        .end(JSON.stringify({ error: "unavailable", message: "the service is temporarily unavailable" }));
      return;
    }
    if (url.pathname === "/users/me") bearers.push(req.headers.authorization ?? null);
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

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const tab = await (await browser.newContext()).newPage();
  tab.on("pageerror", (error) => console.error("page error:", error));
  await tab.goto(base);
  await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  const username = await register(gatehouse.url);
  const signedIn = await tab.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password),
    [username, PASSWORD] as const,
  );
  const refreshes = () => grants.filter((g) => g.grant === "refresh_token");
  const jump = (ms: number) =>
    tab.evaluate((by) => {
      (window as any).offset = by;
    }, ms);

  // Woken a minute past the access token's expiry: one refresh, then the
  // call, with the new token.
  await jump(signedIn.expiresAt - Date.now() + 60_000);
  const sentBefore = bearers.length;
  assert.equal(await tab.evaluate(() => (window as any).me()), "200");
  assert.equal(refreshes().length, 1, "refreshed before the call");
  const fresh = await tab.evaluate(() => (window as any).gh.session.current());
  assert.deepEqual(bearers.slice(sentBefore), [`Bearer ${fresh.accessToken}`], "no dead token was sent");

  // A short outage: two 503s with Retry-After: 1, waited out, then the
  // refresh goes through.
  await jump(fresh.expiresAt - Date.now() + 60_000);
  outage = [1, 1];
  const started = Date.now();
  assert.equal(await tab.evaluate(() => (window as any).me()), "200");
  assert.deepEqual(answered503, [1, 1]);
  assert.ok(Date.now() - started >= 2000, "Retry-After was waited out");
  assert.equal(refreshes().length, 2);
  assert.deepEqual(await tab.evaluate(() => (window as any).events), []);

  // A long outage (Retry-After past the 10 s cap) with an expired token:
  // a typed error the app can show, and the session is kept.
  const kept = await tab.evaluate(() => (window as any).gh.session.current());
  await jump(kept.expiresAt - Date.now() + 60_000);
  outage = [120];
  const failed = await tab.evaluate(() => (window as any).me());
  assert.match(failed, /^error:ApiError:unavailable:503:120$/, failed);
  assert.equal((await tab.evaluate(() => (window as any).gh.session.current()))?.refreshToken, kept.refreshToken);
  assert.deepEqual(await tab.evaluate(() => (window as any).events), [], "no sign-out");
  // Once it is over, the next call refreshes and succeeds.
  assert.equal(await tab.evaluate(() => (window as any).me()), "200");
  assert.equal(refreshes().length, 3);
  console.log(
    `outage: woke past expiry → one refresh before the call; 503 Retry-After 1 ×2 waited out; ` +
      `Retry-After 120 → ${failed}, session kept; ${refreshes().length} refreshes reached the server`,
  );
} finally {
  await browser.close();
  origin.close();
  await gatehouse.stop();
}
