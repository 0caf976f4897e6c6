// The authorization code flow in a real browser:
// 1. a third-party app (a loopback page of this script's own) sends a phone
//    browser, JavaScript off, to /oauth/authorize: a wrong password, then
//    the right one, then the consent page's Allow; the app receives
//    `code`, `state` and `iss`, and redeems the code with its PKCE verifier;
// 2. Swagger UI's Authorize with the authorizationCode flow (PKCE on):
//    Gatehouse's sign-in page in the pop-up, back to /docs, then "Try it
//    out" on GET /users/me.
// 3. an account with a second factor, both ways: the phone asks for the
//    authenticator app's code after the password (a wrong one, then the
//    right one); Swagger UI's pop-up takes a recovery code in the same field.
// Screenshots of each page go to $ARTIFACTS_DIR (authorize-*.png).
import assert from "node:assert/strict";
import { execSync } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.GATEHOUSE_URL ?? "http://127.0.0.1:8080";
const clientCreate = process.env.GATEHOUSE_CLIENT_CREATE;
assert.ok(clientCreate, "GATEHOUSE_CLIENT_CREATE: `gatehouse client create …`");
const artifacts = process.env.ARTIFACTS_DIR ?? "artifacts";
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const username = `authorize_${Date.now().toString(36)}`;
const password = "correct horse battery staple";

/** An RFC 6238 code of a base32 `secret` at `at` (ms): the user's phone. */
function totp(secret, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bits = [...secret].map((char) => alphabet.indexOf(char).toString(2).padStart(5, "0")).join("");
  const key = Buffer.from(bits.match(/.{8}/g).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30_000)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, "0");
}

/** Registers `name` and turns on a second factor: its secret and recovery codes. */
async function enrolled(name) {
  const json = (response) => response.json();
  await fetch(`${base}/users`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: name, password }),
  });
  const login = await fetch(`${base}/auth/login`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: name, password }),
  }).then(json);
  const headers = { "Content-Type": "application/json", Authorization: `Bearer ${login.access_token}` };
  const { secret } = await fetch(`${base}/users/me/mfa/totp`, {
    method: "POST", headers, body: JSON.stringify({ current_password: password }),
  }).then(json);
  // The previous step's code: this step's stays unused for the sign-in.
  const confirmed = await fetch(`${base}/users/me/mfa/totp/confirm`, {
    method: "POST", headers, body: JSON.stringify({ code: totp(secret, Date.now() - 30_000) }),
  }).then(json);
  assert.equal(confirmed.recovery_codes?.length, 10, JSON.stringify(confirmed));
  return { secret, recoveryCodes: confirmed.recovery_codes };
}

const registered = await fetch(`${base}/users`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ username, password }),
});
assert.equal(registered.status, 201, await registered.text());
const app = JSON.parse(
  execSync(`${clientCreate} --name "Photo Album" --scope profile --redirect-uri http://127.0.0.1/callback`, {
    encoding: "utf8",
  }),
);

// The app's callback: records what the browser brings back.
const received = [];
const callback = createServer((req, res) => {
  received.push(new URL(req.url, "http://127.0.0.1"));
  res.writeHead(200, { "Content-Type": "text/html" });
  res.end("<!doctype html><title>Photo Album</title><h1>Signed in</h1>");
});
await new Promise((resolve) => callback.listen(0, "127.0.0.1", resolve));
const redirectUri = `http://127.0.0.1:${callback.address().port}/callback`;

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `authorize-${name}.png`), fullPage: true });

try {
  // 1. A third-party app, a phone, no JavaScript.
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const state = randomBytes(16).toString("base64url");
  const authorizeUrl = `${base}/oauth/authorize?${new URLSearchParams({
    response_type: "code", client_id: app.client_id, redirect_uri: redirectUri, scope: "profile",
    state, code_challenge: challenge, code_challenge_method: "S256",
  })}`;
  const phone = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  const page = await phone.newPage();
  const blocked = [];
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) blocked.push(message.text());
  });
  const opened = await page.goto(authorizeUrl);
  assert.equal(opened.status(), 200);
  assert.equal(await page.locator("h1").textContent(), "Sign in");
  assert.match(await page.locator("main").textContent(), /Photo Album/);
  await shot(page, "login");

  await page.fill("#username", username);
  await page.fill("#password", "not my password");
  const [wrong] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(wrong.status(), 400);
  assert.match(await page.locator(".error").textContent(), /username or the password is wrong/);
  assert.equal(await page.inputValue("#username"), username, "the username is kept");
  assert.equal(await page.getAttribute("#password", "aria-describedby"), "login-error");
  await shot(page, "login-wrong-password");

  await page.fill("#password", password);
  const [consent] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(consent.status(), 200);
  assert.equal(await page.locator("h1").textContent(), "Allow Photo Album?");
  await shot(page, "consent");

  // Allow: Gatehouse answers with a redirect to the app, which the page's
  // form-action lets through.
  await Promise.all([page.waitForURL(/\/callback\?/), page.click('button[value="allow"]')]);
  assert.deepEqual(blocked, []);
  const answer = received.filter((url) => url.pathname === "/callback").at(-1).searchParams;
  assert.equal(answer.get("state"), state);
  assert.equal(answer.get("iss"), base);
  const tokens = await fetch(`${base}/oauth/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code", client_id: app.client_id, code: answer.get("code"),
      redirect_uri: redirectUri, code_verifier: verifier,
    }),
  });
  const issued = await tokens.text();
  assert.equal(tokens.status, 200, issued);
  const me = await fetch(`${base}/users/me`, {
    headers: { Authorization: `Bearer ${JSON.parse(issued).access_token}` },
  });
  assert.equal((await me.json()).username, username);

  // 2. Swagger UI's Authorize, authorization code with PKCE, desktop.
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 1800 } });
  const docs = await desktop.newPage();
  docs.setDefaultTimeout(20_000);
  await docs.goto(`${base}/docs`);
  await docs.click(".btn.authorize");
  const flow = docs.locator(".auth-container").filter({ hasText: "Flow: authorizationCode" });
  await flow.locator("#client_id_authorizationCode").fill("gatehouse");
  await flow.locator('label[for="profile-authorizationCode-checkbox-OAuth2"]').click();
  const [popup] = await Promise.all([
    docs.waitForEvent("popup"),
    flow.locator(".btn.modal-btn.authorize").click(),
  ]);
  await popup.waitForLoadState();
  assert.equal(await popup.locator("h1").textContent(), "Sign in");
  await shot(popup, "swagger-login");
  await popup.fill("#username", username);
  await popup.fill("#password", password);
  const [token] = await Promise.all([
    docs.waitForResponse((r) => r.url().endsWith("/oauth/token")),
    popup.click("button[type=submit]"),
  ]);
  assert.equal(token.status(), 200, await token.text());
  await docs.waitForSelector('.auth-btn-wrapper button:has-text("Logout")');
  await docs.click('.auth-btn-wrapper button:has-text("Close")');
  const op = docs.locator("#operations-Users-getMe");
  await op.locator(".opblock-summary").click();
  await op.locator(".try-out__btn").click();
  await op.locator(".execute").click();
  const row = op.locator(".live-responses-table .response").first();
  await row.waitFor();
  assert.equal((await row.locator(".response-col_status").textContent()).trim(), "200");
  await shot(docs, "swagger-signed-in");

  // 3. A second factor: the phone, then Swagger UI.
  const guarded = `${username}_mfa`;
  const factor = await enrolled(guarded);
  const mfaPhone = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  const second = await mfaPhone.newPage();
  await second.goto(authorizeUrl);
  await second.fill("#username", guarded);
  await second.fill("#password", password);
  const [asked] = await Promise.all([second.waitForNavigation(), second.click("button[type=submit]")]);
  assert.equal(asked.status(), 200);
  assert.equal(await second.locator("h1").textContent(), "Two-step verification");
  assert.equal(await second.getAttribute("#otp", "autocomplete"), "one-time-code");
  await shot(second, "second-factor");
  const wrongCode = totp(factor.secret) === "000000" ? "111111" : "000000";
  await second.fill("#otp", wrongCode);
  const [refused] = await Promise.all([second.waitForNavigation(), second.click("button[type=submit]")]);
  assert.equal(refused.status(), 400);
  assert.match(await second.locator(".error").textContent(), /code is wrong/);
  await shot(second, "second-factor-wrong-code");
  await second.fill("#otp", totp(factor.secret));
  const [allowPage] = await Promise.all([second.waitForNavigation(), second.click("button[type=submit]")]);
  assert.equal(allowPage.status(), 200);
  assert.equal(await second.locator("h1").textContent(), "Allow Photo Album?");
  await Promise.all([second.waitForURL(/\/callback\?/), second.click('button[value="allow"]')]);
  const mfaAnswer = received.filter((url) => url.pathname === "/callback").at(-1).searchParams;
  const mfaTokens = await fetch(`${base}/oauth/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code", client_id: app.client_id, code: mfaAnswer.get("code"),
      redirect_uri: redirectUri, code_verifier: verifier,
    }),
  }).then((response) => response.json());
  const claims = JSON.parse(Buffer.from(mfaTokens.access_token.split(".")[1], "base64url").toString());
  assert.deepEqual(claims.amr, ["pwd", "otp", "mfa"]);

  const mfaDesktop = await browser.newContext({ viewport: { width: 1280, height: 1800 } });
  const mfaDocs = await mfaDesktop.newPage();
  mfaDocs.setDefaultTimeout(20_000);
  await mfaDocs.goto(`${base}/docs`);
  await mfaDocs.click(".btn.authorize");
  const mfaFlow = mfaDocs.locator(".auth-container").filter({ hasText: "Flow: authorizationCode" });
  await mfaFlow.locator("#client_id_authorizationCode").fill("gatehouse");
  await mfaFlow.locator('label[for="profile-authorizationCode-checkbox-OAuth2"]').click();
  const [mfaPopup] = await Promise.all([
    mfaDocs.waitForEvent("popup"),
    mfaFlow.locator(".btn.modal-btn.authorize").click(),
  ]);
  await mfaPopup.waitForLoadState();
  await mfaPopup.fill("#username", guarded);
  await mfaPopup.fill("#password", password);
  await Promise.all([mfaPopup.waitForNavigation(), mfaPopup.click("button[type=submit]")]);
  assert.equal(await mfaPopup.locator("h1").textContent(), "Two-step verification");
  await shot(mfaPopup, "swagger-second-factor");
  await mfaPopup.fill("#otp", factor.recoveryCodes[0]);
  const [mfaToken] = await Promise.all([
    mfaDocs.waitForResponse((r) => r.url().endsWith("/oauth/token")),
    mfaPopup.click("button[type=submit]"),
  ]);
  assert.equal(mfaToken.status(), 200, await mfaToken.text());
  await mfaDocs.waitForSelector('.auth-btn-wrapper button:has-text("Logout")');
  await mfaDocs.click('.auth-btn-wrapper button:has-text("Close")');
  const mfaOp = mfaDocs.locator("#operations-Users-getMe");
  await mfaOp.locator(".opblock-summary").click();
  await mfaOp.locator(".try-out__btn").click();
  await mfaOp.locator(".execute").click();
  const mfaRow = mfaOp.locator(".live-responses-table .response").first();
  await mfaRow.waitFor();
  assert.equal((await mfaRow.locator(".response-col_status").textContent()).trim(), "200");
  assert.match(await mfaOp.locator(".live-responses-table").textContent(), /"mfa_enabled": true/);

  console.log(`authorize: app login → wrong password → consent → code → tokens; Swagger UI authorization code → GET /users/me 200; second factor on the phone (wrong code, right code) and in Swagger UI (recovery code): ok (${username})`);
} finally {
  await browser.close();
  callback.close();
}
