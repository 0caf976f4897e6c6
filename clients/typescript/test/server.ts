// A Gatehouse of the test's own, on SQLite in a fresh directory, started
// from the binary that clients/run built (GATEHOUSE_BIN).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHmac } from "node:crypto";
import { MfaRequired, type TokenSet } from "../src/index.js";

export interface Server {
  url: string;
  /** Its data directory (its SQLite database), for admin commands. */
  dataDir: string;
  stop(): Promise<void>;
}

export const PASSWORD = "correct horse battery staple";

const binary = process.env.GATEHOUSE_BIN ?? new URL("../../../../target/debug/gatehouse", import.meta.url).pathname;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Starts Gatehouse with `flags`; resolves once `/health/ready` answers. */
export async function startGatehouse(...flags: string[]): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "gatehouse-sdk-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(binary, ["--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, ...flags], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/health/ready`)).ok) return { url, dataDir, stop };
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) break;
    // Waiting for another process to start.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new Error(`gatehouse did not become ready:\n${log}`);
}

/** Runs an admin command (`client create …`) on `server`'s database; its standard output. */
export function admin(server: Server, ...args: string[]): string {
  return execFileSync(binary, [...args, "--data-dir", server.dataDir], { encoding: "utf8" });
}

/** Registers a fresh user; returns its name. */
export async function register(url: string): Promise<string> {
  const username = `sdk_${Math.random().toString(36).slice(2, 10)}`;
  const response = await fetch(`${url}/users`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  if (response.status !== 201) throw new Error(`register: ${response.status} ${await response.text()}`);
  return username;
}

/** One request as it went on the wire, with the status it got. */
export interface Sent {
  method: string;
  path: string;
  /** The `grant_type` of a token request. */
  grant: string | null;
  authorization: string | null;
  status: number;
}

/** A `fetch` that records what goes on the wire. */
export function recording(): { fetch: (request: Request) => Promise<Response>; sent: Sent[] } {
  const sent: Sent[] = [];
  return {
    sent,
    fetch: async (request) => {
      const body = request.method === "POST" ? await request.clone().text() : "";
      const grant = new URLSearchParams(body).get("grant_type");
      const response = await fetch(request);
      sent.push({
        method: request.method,
        path: new URL(request.url).pathname,
        grant,
        authorization: request.headers.get("authorization"),
        status: response.status,
      });
      return response;
    },
  };
}

/** A browser on Gatehouse's pages: follows the sign-in (and consent) forms
 * and returns the URL it is finally sent back to. */
export async function signInAt(url: string, username: string, decision = "allow"): Promise<string> {
  const cookies = new Map<string, string>();
  const send = async (request: Request): Promise<Response> => {
    request.headers.set("cookie", [...cookies].map(([name, value]) => `${name}=${value}`).join("; "));
    const response = await fetch(request, { redirect: "manual" });
    for (const set of response.headers.getSetCookie()) {
      const [pair] = set.split(";");
      const [name, value] = pair!.split("=");
      cookies.set(name!, value!);
    }
    return response;
  };
  const fields = (html: string): URLSearchParams =>
    new URLSearchParams([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1]!, unescape(m[2]!)]));
  let page = await send(new Request(url));
  if (page.status !== 200) throw new Error(`the sign-in page: ${page.status}`);
  const form = fields(await page.text());
  form.set("username", username);
  form.set("password", PASSWORD);
  page = await send(new Request(new URL("/oauth/authorize", url), { method: "POST", body: form }));
  if (page.status === 200) {
    const consent = fields(await page.text());
    consent.set("decision", decision);
    page = await send(new Request(new URL("/oauth/authorize", url), { method: "POST", body: consent }));
  }
  if (page.status !== 302) throw new Error(`after the forms: ${page.status} ${await page.text()}`);
  return page.headers.get("location")!;
}

/** HTML attribute escapes as askama writes them. */
function unescape(text: string): string {
  return text.replace(/&#x2f;|&#47;/g, "/").replace(/&#x27;|&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
}


/** The tokens of a sign-in that needed no second factor. */
export function signedIn(result: TokenSet | MfaRequired): TokenSet {
  if (result instanceof MfaRequired) throw new Error("a second factor was asked for");
  return result;
}

/** An RFC 6238 code (SHA-1, six digits, 30 s) of a base32 `secret` at `at`
 * (ms): written here from the RFC, apart from the server's implementation. */
export function totp(secret: string, at = Date.now()): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const char of secret.replace(/=+$/, "")) bits += alphabet.indexOf(char).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g)!.map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return code.toString().padStart(6, "0");
}
