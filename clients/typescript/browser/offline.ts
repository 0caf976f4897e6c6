// Offline during a refresh, in Debian's Chromium (Playwright's setOffline):
// the session is kept and no sign-out happens; back online, the SDK
// refreshes once and calls succeed. The page's clock runs ahead by a
// variable the test sets, so the access token is inside its refresh margin
// without waiting.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { PASSWORD, register, startGatehouse } from "../test/server.js";
import { failInsteadOfHanging, jumpTo, launchChromium, openTab, SESSION_PAGE, sdkPage, startAppOrigin } from "./harness.js";

failInsteadOfHanging();
const gatehouse = await startGatehouse();
const origin = await startAppOrigin(gatehouse.url, SESSION_PAGE);
const grants = origin.grants;

const browser = await launchChromium();
try {
  const context = await browser.newContext();
  const tab = await openTab(context, origin.url);
  const username = await register(gatehouse.url);
  const first = await tab.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password),
    [username, PASSWORD] as const,
  );
  assert.equal(await tab.evaluate(() => (window as any).me()), "200");
  const refreshes = () => grants.filter((g) => g.grant === "refresh_token");

  // 30 s before the access token expires by the page's clock, the network goes.
  await jumpTo(tab, first.expiresAt, 30_000);
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
