// What the browser tests share: an app's origin (the page, the SDK and
// openapi-fetch, and everything else proxied to a live Gatehouse, one
// origin as an app serving its API behind its own host) whose proxy the
// test controls, the SDK page the network tests run, and Debian's Chromium.
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { extname, join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

const root = new URL("../..", import.meta.url).pathname; // clients/typescript
const types: Record<string, string> = { ".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json" };

/** A hang is a failure, not a stuck CI job. */
export function failInsteadOfHanging(seconds = 90): void {
  setTimeout(() => {
    console.error(`${process.argv[1]}: no end after ${seconds} s`);
    process.exit(1);
  }, seconds * 1000).unref();
}

/** A token request that reached Gatehouse, with its answer. */
export interface Grant {
  grant: string | null;
  status: number;
  /** The refresh token the answer holds. */
  refreshToken: string | null;
  /** The refresh token the request presented. */
  presented: string | null;
}

/** A request the proxy is about to forward: `true` when the test answered it
 * (or will never answer it) itself. */
export type Intercept = (path: string, form: URLSearchParams, req: IncomingMessage, res: ServerResponse) => boolean;

export interface AppOrigin {
  url: string;
  /** Token requests forwarded to Gatehouse, in order. */
  grants: Grant[];
  close(): void;
}

/** The HTML of a page that loads the SDK (as `sdk`) and runs `script`. */
export function sdkPage(script: string): string {
  return `<!doctype html><meta charset="utf-8"><title>Gatehouse SDK</title>
<script type="importmap">{"imports": {"openapi-fetch": "/vendor/openapi-fetch/index.mjs"}}</script>
<script type="module">
  import * as sdk from "/sdk/index.js";
  window.sdk = sdk;
${script}
  window.ready = true;
</script>`;
}

/** The network tests' page: a session in localStorage whose clock runs ahead
 * by `window.offset` (so a token is in its refresh margin without waiting),
 * `window.events` (sign-outs), `window.me()` (GET /users/me: its status, or
 * the error's name, code, status and retryAfter) and `window.timed()` (the
 * same, with how long it took). The query may set `deadline` and
 * `lockWait`. */
export const SESSION_PAGE = sdkPage(`
  const params = new URLSearchParams(location.search);
  window.offset = 0;
  window.gh = sdk.createGatehouse({ baseUrl: location.origin, storage: new sdk.LocalStorageStorage(),
    now: () => Date.now() + window.offset,
    retry: { deadline: Number(params.get("deadline") ?? 2000) }, lockWait: Number(params.get("lockWait") ?? 3000) });
  window.events = [];
  window.gh.session.on("signedOut", (reason) => window.events.push("signedOut:" + reason));
  window.me = () => window.gh.api.GET("/users/me").then((r) => String(r.response.status),
    (e) => "error:" + e.name + ":" + (e.code ?? "") + ":" + (e.status ?? "") + ":" + (e.retryAfter ?? ""));
  window.timed = async () => {
    const started = Date.now();
    const status = await window.me();
    return { status, ms: Date.now() - started };
  };`);

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

/** Serves the SDK and openapi-fetch (`/sdk/…`, `/vendor/openapi-fetch/…`);
 * `false` for any other path. */
export async function serveSdk(path: string, res: ServerResponse): Promise<boolean> {
  if (path.startsWith("/sdk/")) {
    await serveFile(res, join(root, "dist", path.slice(5)));
  } else if (path.startsWith("/vendor/openapi-fetch/")) {
    await serveFile(res, join(root, "node_modules/openapi-fetch/dist", path.slice(22)));
  } else {
    return false;
  }
  return true;
}

/** An app's origin serving `page` at `/`, and proxying the rest to
 * `gatehouseUrl` unless `intercept` answers first. */
export async function startAppOrigin(gatehouseUrl: string, page: string, intercept?: Intercept): Promise<AppOrigin> {
  const grants: Grant[] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://origin");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(page);
      return;
    }
    if (await serveSdk(url.pathname, res)) return;
    const sent = await body(req);
    const form = new URLSearchParams(sent.toString());
    if (intercept?.(url.pathname, form, req, res)) return;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === "string" && !["host", "connection", "content-length"].includes(name)) headers[name] = value;
    }
    const init: RequestInit = { method: req.method ?? "GET", headers };
    if (sent.length > 0) init.body = new Uint8Array(sent);
    const answer = await fetch(`${gatehouseUrl}${url.pathname}${url.search}`, init);
    const text = await answer.text();
    if (url.pathname === "/oauth/token") {
      const refreshToken = answer.ok ? (JSON.parse(text) as { refresh_token: string }).refresh_token : null;
      grants.push({
        grant: form.get("grant_type"),
        status: answer.status,
        refreshToken,
        presented: form.get("refresh_token"),
      });
    }
    const out: Record<string, string> = {};
    answer.headers.forEach((value, name) => {
      if (!["content-length", "content-encoding", "transfer-encoding", "connection"].includes(name)) out[name] = value;
    });
    res.writeHead(answer.status, out).end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return { url, grants, close: () => server.close() };
}

/** Debian's Chromium (or $CHROMIUM). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
}

/** A tab of `context` on `url`, once its page is ready. */
export async function openTab(context: BrowserContext, url: string): Promise<Page> {
  const tab = await context.newPage();
  tab.on("pageerror", (error) => console.error("page error:", error));
  await tab.goto(url);
  await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  return tab;
}

/** Moves `tab`'s clock so that `expiresAt` (ms, the tab's clock) is
 * `beforeExpiry` ms away (negative: past it). */
export function jumpTo(tab: Page, expiresAt: number, beforeExpiry: number): Promise<void> {
  return tab.evaluate(
    ([at, before]) => {
      (window as any).offset = at - Date.now() - before;
    },
    [expiresAt, beforeExpiry] as const,
  );
}
