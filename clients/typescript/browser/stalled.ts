// A stalled refresh, in Debian's Chromium, two tabs: the proxy (this
// script's origin server) accepts refresh requests and never answers them.
// Each tab gives up at its deadline and keeps using its still-valid access
// token; the second tab never waits on the first's lock for longer than the
// deadline and a second; nobody is signed out. Once the network answers
// again, one refresh (of the same refresh token) rotates the session.
import assert from "node:assert/strict";
import { PASSWORD, register, startGatehouse } from "../test/server.js";
import { failInsteadOfHanging, jumpTo, launchChromium, openTab, SESSION_PAGE, startAppOrigin } from "./harness.js";

failInsteadOfHanging();
const gatehouse = await startGatehouse();
let stall = false;
const stalled: (string | null)[] = [];
const origin = await startAppOrigin(gatehouse.url, SESSION_PAGE, (path, form) => {
  if (stall && path === "/oauth/token" && form.get("grant_type") === "refresh_token") {
    // Accepted, never answered: the client's deadline is all that ends it.
    stalled.push(form.get("refresh_token"));
    return true;
  }
  return false;
});
const grants = origin.grants;
/** The pages' request deadline (their default). */
const DEADLINE = 2000;

const browser = await launchChromium();
try {
  const context = await browser.newContext();
  const first = await openTab(context, origin.url);
  const second = await openTab(context, origin.url);
  const username = await register(gatehouse.url);
  const signedIn = await first.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password),
    [username, PASSWORD] as const,
  );
  const refreshes = () => grants.filter((g) => g.grant === "refresh_token");

  // Both tabs' clocks 30 s before the access token expires: every call wants
  // a refresh first; and refreshes stall.
  for (const tab of [first, second]) {
    await jumpTo(tab, signedIn.expiresAt, 30_000);
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
