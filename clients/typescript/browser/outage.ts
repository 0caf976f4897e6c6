// Waking past expiry, and an outage, in Debian's Chromium:
// - a tab whose clock jumped past its access token's expiry (a laptop that
//   slept, a background tab whose timers were throttled) refreshes before
//   its first call, which carries the new token: no dead token is sent;
// - refreshes answered 503 with `Retry-After: 1` are waited out and
//   retried; a longer outage (`Retry-After` past the cap) reaches the app as
//   a typed `ApiError` it can show, and never signs the user out.
import assert from "node:assert/strict";
import { PASSWORD, register, startGatehouse } from "../test/server.js";
import { failInsteadOfHanging, jumpTo, launchChromium, openTab, SESSION_PAGE, startAppOrigin } from "./harness.js";

failInsteadOfHanging();
const gatehouse = await startGatehouse();
/** `Retry-After` of the next refreshes to answer 503 (one each). */
let outage: number[] = [];
const answered503: number[] = [];
/** The Authorization header of each GET /users/me. */
const bearers: (string | null)[] = [];
const origin = await startAppOrigin(gatehouse.url, SESSION_PAGE, (path, form, req, res) => {
  if (outage.length > 0 && path === "/oauth/token" && form.get("grant_type") === "refresh_token") {
    const retryAfter = outage.shift()!;
    answered503.push(retryAfter);
    res
      .writeHead(503, { "content-type": "application/json", "retry-after": String(retryAfter), "cache-control": "no-store" })
      // As Gatehouse answers when its database is down.
      .end(JSON.stringify({ error: "unavailable", message: "the service is temporarily unavailable" }));
    return true;
  }
  if (path === "/users/me") bearers.push(req.headers.authorization ?? null);
  return false;
});
const grants = origin.grants;

const browser = await launchChromium();
try {
  const tab = await openTab(await browser.newContext(), origin.url);
  const username = await register(gatehouse.url);
  const signedIn = await tab.evaluate(
    ([name, password]) => (window as any).gh.session.signIn(name, password),
    [username, PASSWORD] as const,
  );
  const refreshes = () => grants.filter((g) => g.grant === "refresh_token");

  // Woken a minute past the access token's expiry: one refresh, then the
  // call, with the new token.
  await jumpTo(tab, signedIn.expiresAt, -60_000);
  const sentBefore = bearers.length;
  assert.equal(await tab.evaluate(() => (window as any).me()), "200");
  assert.equal(refreshes().length, 1, "refreshed before the call");
  const fresh = await tab.evaluate(() => (window as any).gh.session.current());
  assert.deepEqual(bearers.slice(sentBefore), [`Bearer ${fresh.accessToken}`], "no dead token was sent");

  // A short outage: two 503s with Retry-After: 1, waited out, then the
  // refresh goes through.
  await jumpTo(tab, fresh.expiresAt, -60_000);
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
  await jumpTo(tab, kept.expiresAt, -60_000);
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
