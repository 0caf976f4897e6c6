// A tab frozen while it holds the refresh lock (the Page Lifecycle freeze,
// through CDP), in Debian's Chromium: the other tab waits for the lock no
// longer than the deadline and a second, then refreshes on its own. When
// the frozen tab wakes it takes the other tab's tokens from storage and
// never turns the stale refresh token into a reuse.
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { PASSWORD, register, startGatehouse } from "../test/server.js";
import { failInsteadOfHanging, jumpTo, launchChromium, openTab, SESSION_PAGE, startAppOrigin } from "./harness.js";

failInsteadOfHanging();
const gatehouse = await startGatehouse();
/** Refresh requests still to stall (accept, never answer). */
let stall = 0;
const stalled: (string | null)[] = [];
/** The stalled answers, to cut when the test says. */
const held: ServerResponse[] = [];
const origin = await startAppOrigin(gatehouse.url, SESSION_PAGE, (path, form, _req, res) => {
  if (stall > 0 && path === "/oauth/token" && form.get("grant_type") === "refresh_token") {
    stall--;
    stalled.push(form.get("refresh_token"));
    held.push(res);
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
  const open = (query: string) => openTab(context, `${origin.url}/?${query}`);
  // The tab that will sleep holds the lock for as long as its refresh can
  // last (a long deadline); the other waits for the lock 3 s at most.
  const sleeper = await open("deadline=60000");
  const other = await open(`deadline=${DEADLINE}&lockWait=3000`);
  const username = await register(gatehouse.url);
  const signedIn = await sleeper.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password),
    [username, PASSWORD] as const,
  );
  for (const tab of [sleeper, other]) {
    await jumpTo(tab, signedIn.expiresAt, 30_000);
  }
  const refreshes = () => grants.filter((g) => g.grant === "refresh_token");

  // The first tab takes the lock for a refresh that stalls, and is frozen
  // holding it.
  stall = 1;
  await sleeper.evaluate(() => {
    (window as any).pending = (window as any).timed();
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(stalled.length, 1, "the first tab's refresh is on the wire");
  const cdp = await context.newCDPSession(sleeper);
  await cdp.send("Page.setWebLifecycleState", { state: "frozen" });

  // The other tab is not held up for longer than the lock bound.
  const started = Date.now();
  const call = await other.evaluate(() => (window as any).timed());
  assert.equal(call.status, "200");
  assert.ok(Date.now() - started < 3000 + 2000, `waited ${Date.now() - started} ms`);
  assert.equal(refreshes().length, 1, "the other tab refreshed on its own");
  assert.equal(refreshes()[0]!.status, 200);
  const rotated = refreshes()[0]!.refreshToken;

  // The frozen tab wakes: it uses the other tab's tokens, and never sends
  // the stale refresh token.
  await cdp.send("Page.setWebLifecycleState", { state: "active" });
  // Its stalled request ends (the connection drops) as it wakes.
  held.forEach((res) => res.destroy());
  const woke = await sleeper.evaluate(() => (window as any).pending);
  assert.equal(woke.status, "200");
  assert.equal(await sleeper.evaluate(() => (window as any).me()), "200");
  const current = await sleeper.evaluate(() => (window as any).gh.session.current());
  assert.equal(current?.refreshToken, rotated, "the frozen tab holds the other tab's tokens");
  // No reuse reached the server: every refresh got the one successor (the
  // browser itself may resend the stalled request once its connection
  // drops; the server's grace window answers that with the same successor).
  assert.ok(
    refreshes().every((g) => g.status === 200 && g.refreshToken === rotated),
    `no reuse of the stale token: ${JSON.stringify(refreshes())}`,
  );
  for (const tab of [sleeper, other]) {
    assert.deepEqual(await tab.evaluate(() => (window as any).events), [], "nobody signed out");
  }
  console.log(
    `frozen tab: the other tab refreshed after ${call.ms} ms without the lock; the frozen one woke on its tokens; ` +
      `${refreshes().length} refresh(es) reached the server, none a reuse`,
  );
} finally {
  await browser.close();
  origin.close();
  await gatehouse.stop();
}
