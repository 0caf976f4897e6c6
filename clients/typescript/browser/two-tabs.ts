// Two tabs of one origin share a session (localStorage) and refresh at the
// same moment, in Debian's Chromium: both stay signed in, and the server sees
// one rotation (or a grace replay of it), never a reuse. Then one tab signs
// out, and the other hears of it.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { PASSWORD, register, startGatehouse } from "../test/server.js";
import { failInsteadOfHanging, jumpTo, launchChromium, openTab, SESSION_PAGE, sdkPage, startAppOrigin } from "./harness.js";

const gatehouse = await startGatehouse();
const origin = await startAppOrigin(
  gatehouse.url,
  sdkPage(`  window.gh = sdk.createGatehouse({ baseUrl: location.origin, storage: new sdk.LocalStorageStorage() });
  window.events = [];
  window.gh.session.on("signedOut", (reason) => window.events.push("signedOut:" + reason));
  window.gh.session.on("tokens", () => window.events.push("tokens"));
  new BroadcastChannel("test-go").onmessage = async () => {
    const seen = await window.gh.session.current();
    window.refreshed = window.gh.session.refresh(seen).then((t) => t && t.refreshToken);
  };`),
);
const grants = origin.grants;
const base = origin.url;

const browser = await launchChromium();
try {
  const context = await browser.newContext();
  const first = await openTab(context, base);
  const second = await openTab(context, base);

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
