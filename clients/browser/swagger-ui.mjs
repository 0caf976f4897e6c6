// Swagger UI in a real browser: Authorize (OAuth2 password flow against
// /oauth/token), then "Try it out" on GET /users/me and POST /auth/refresh.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.GATEHOUSE_URL ?? "http://127.0.0.1:8080";
const artifacts = process.env.ARTIFACTS_DIR ?? "artifacts";
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const username = `swagger_${Date.now().toString(36)}`;
const password = "correct horse battery staple";

const registered = await fetch(`${base}/users`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ username, password }),
});
assert.equal(registered.status, 201, await registered.text());

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 1800 } });
page.setDefaultTimeout(20_000);
mkdirSync(artifacts, { recursive: true });

try {
  await page.goto(`${base}/docs`);
  await page.click(".btn.authorize");
  await page.fill("#oauth_username", username);
  await page.fill("#oauth_password", password);
  // Swagger UI's defaults: client credentials "in the Authorization header",
  // client id and secret left blank, so it sends `Basic Og==`.
  const [tokenResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/oauth/token")),
    page.click(".auth-btn-wrapper .btn.modal-btn.authorize"),
  ]);
  assert.equal(tokenResponse.status(), 200, await tokenResponse.text());
  const tokens = await tokenResponse.json();
  await page.waitForSelector('.auth-btn-wrapper button:has-text("Logout")');
  await page.click('.auth-btn-wrapper button:has-text("Close")');

  const me = await tryItOut(page, "Users", "getMe");
  assert.equal(me.status, "200", me.body);
  assert.equal(JSON.parse(me.body).username, username);

  const refresh = await tryItOut(page, "Tokens", "refresh", JSON.stringify({ refresh_token: tokens.refresh_token }));
  assert.equal(refresh.status, "200", refresh.body);
  const refreshed = JSON.parse(refresh.body);
  assert.equal(refreshed.token_type, "Bearer");
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token);

  // A new operation, with the example body the spec gives it.
  const reset = await tryItOut(page, "Recovery", "requestPasswordReset");
  assert.equal(reset.status, "202", reset.body);

  console.log(`swagger ui: authorize → GET /users/me 200 → POST /auth/refresh 200 → POST /auth/password-reset 202: ok (${username})`);
} finally {
  await page.screenshot({ path: join(artifacts, "swagger-ui.png"), fullPage: true });
  await browser.close();
}

// Expands an operation, clicks "Try it out", optionally replaces the request
// body, clicks "Execute", and returns the live response's status and body.
async function tryItOut(page, tag, operationId, body) {
  const op = page.locator(`#operations-${tag}-${operationId}`);
  await op.locator(".opblock-summary").click();
  await op.locator(".try-out__btn").click();
  if (body !== undefined) {
    await op.locator("textarea.body-param__text").fill(body);
  }
  await op.locator(".execute").click();
  const row = op.locator(".live-responses-table .response").first();
  await row.waitFor();
  const status = (await row.locator(".response-col_status").textContent()).trim();
  const bodies = row.locator(".response-col_description pre");
  const text = (await bodies.count()) > 0 ? await bodies.first().textContent() : "";
  return { status, body: text.trim() };
}
