// The account calls against a live Gatehouse that writes its mails into a
// directory (`--mail-dir`): the test reads the links from there.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ApiError, createGatehouse } from "../src/index.js";
import { PASSWORD, signedIn, startGatehouse } from "./server.js";

const mailDir = mkdtempSync(join(tmpdir(), "gatehouse-sdk-mail-"));
const server = await startGatehouse("--mail-dir", mailDir, "--mail-poll-interval", "100ms");
after(() => server.stop());

/** The decoded text of every mail to `address` so far. */
function mailsTo(address: string): string[] {
  return readdirSync(mailDir)
    .filter((name) => name.endsWith(".eml"))
    .map((name) => readFileSync(join(mailDir, name), "utf8"))
    .filter((eml) => eml.includes(`To: ${address}`))
    .map((eml) => eml.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))));
}

/** The token of the next mail to `address` whose text holds `needle`. */
async function tokenFrom(address: string, needle: string, seen = 0): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const mails = mailsTo(address).filter((mail) => mail.includes(needle));
    if (mails.length > seen) {
      const match = /token=([A-Za-z0-9_-]{43})/.exec(mails[mails.length - 1]!);
      if (match) return match[1]!;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no mail to ${address} with ${needle}`);
}

async function rejects(promise: Promise<unknown>, code: string, status: number): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.code, code);
    assert.equal(error.status, status);
    return true;
  });
}

test("a forgotten password is reset with the mailed link", async () => {
  const { account, session } = createGatehouse({ baseUrl: server.url });
  const username = `sdk_${Math.random().toString(36).slice(2, 10)}`;
  const address = `${username}@example.org`;
  const registered = await fetch(`${server.url}/users`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: PASSWORD, email: address }),
  });
  assert.equal(registered.status, 201);

  await account.requestPasswordReset({ username });
  await account.requestPasswordReset({ username: "nobody-at-all" }); // alike
  const token = await tokenFrom(address, "reset-password");

  await rejects(account.confirmPasswordReset(token, "short"), "invalid_password", 400);
  await account.confirmPasswordReset(token, "a brand new passphrase");
  await rejects(account.confirmPasswordReset(token, "another new passphrase"), "invalid_token", 400);
  const tokens = signedIn(await session.signIn(username, "a brand new passphrase"));
  assert.ok(tokens.accessToken.length > 0);
});

test("an address is verified, and changed only once the new one is confirmed", async () => {
  const { account, session, api } = createGatehouse({ baseUrl: server.url });
  const username = `sdk_${Math.random().toString(36).slice(2, 10)}`;
  const address = `${username}@example.org`;
  await fetch(`${server.url}/users`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: PASSWORD, email: address }),
  });
  await session.signIn(username, PASSWORD);
  await account.requestEmailVerification();
  const token = await tokenFrom(address, "verify-email");
  await account.verifyEmail(token);
  await rejects(account.verifyEmail(token), "invalid_token", 400);
  await rejects(account.requestEmailVerification(), "already_verified", 409);
  let me = await api.GET("/users/me");
  assert.equal(me.data?.email_verified, true);

  const next = `${username}@example.net`;
  await rejects(account.changeEmail(next, "not the password"), "invalid_current_password", 400);
  await account.changeEmail(next, PASSWORD);
  me = await api.GET("/users/me");
  assert.equal(me.data?.email, address, "not before the link");
  await account.verifyEmail(await tokenFrom(next, "verify-email"));
  me = await api.GET("/users/me");
  assert.equal(me.data?.email, next);
  assert.equal(me.data?.email_verified, true);
});
