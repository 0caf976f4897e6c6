// A redirect sign-in in Debian's Chromium: a page of the test's own (an
// app on its own origin) calls `session.signInWithRedirect()`, the user
// signs in on Gatehouse's page, and the app's callback page calls
// `handleRedirectCallback()`; then the token manager calls the API (CORS)
// and refreshes. The PKCE verifier and `state` wait in sessionStorage.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { PASSWORD, admin, register, startGatehouse } from "../test/server.js";
import { launchChromium, sdkPage, serveSdk } from "./harness.js";

// The app: its page (the same at / and at /callback), the SDK and
// openapi-fetch. Gatehouse is elsewhere, on its own origin.
let gatehouseUrl = "";
let clientId = "";
const page = () =>
  sdkPage(`
  const gh = sdk.createGatehouse({ baseUrl: ${JSON.stringify(gatehouseUrl)}, clientId: ${JSON.stringify(clientId)},
    storage: new sdk.LocalStorageStorage() });
  window.gh = gh;
  if (location.pathname === "/callback") {
    window.outcome = gh.session.handleRedirectCallback()
      .then(() => gh.api.GET("/users/me"))
      .then((me) => "signed in as " + me.data.username, (error) => "failed: " + error);
  }`);
const app = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://app");
  if (url.pathname === "/" || url.pathname === "/callback") {
    res.writeHead(200, { "content-type": "text/html" }).end(page());
  } else if (!(await serveSdk(url.pathname, res))) {
    res.writeHead(404).end();
  }
});
await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
const address = app.address();
const appUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

const gatehouse = await startGatehouse("--cors-origins", appUrl);
gatehouseUrl = gatehouse.url;
clientId = (
  JSON.parse(
    admin(gatehouse, "client", "create", "--name", "An app", "--first-party", "--scope", "profile",
      "--redirect-uri", "http://127.0.0.1/callback"),
  ) as { client_id: string }
).client_id;
const username = await register(gatehouse.url);

const browser = await launchChromium();
try {
  const tab = await (await browser.newContext()).newPage();
  tab.on("pageerror", (error) => console.error("page error:", error));
  const consoled: string[] = [];
  tab.on("console", (message) => consoled.push(message.text()));
  await tab.goto(appUrl);
  await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  await Promise.all([
    tab.waitForURL(`${gatehouse.url}/oauth/authorize?**`),
    tab.evaluate((redirectUri) => {
      void (window as any).gh.session.signInWithRedirect({ redirectUri });
    }, `${appUrl}/callback`),
  ]);
  assert.equal(await tab.locator("h1").textContent(), "Sign in");
  const waiting = await tab.evaluate(() => Object.keys(sessionStorage));
  assert.deepEqual(waiting, [], "Gatehouse's origin sees none of the app's sessionStorage");
  await tab.fill("#username", username);
  await tab.fill("#password", PASSWORD);
  await Promise.all([tab.waitForURL(`${appUrl}/callback?**`), tab.click("button[type=submit]")]).catch(async (error) => {
    throw new Error(`${error}: at ${tab.url()}: ${(await tab.content()).slice(0, 600)}; console: ${consoled.join(" | ")}`);
  });
  await tab.waitForFunction(() => (window as any).outcome !== undefined);
  assert.equal(await tab.evaluate(() => (window as any).outcome), `signed in as ${username}`);
  assert.deepEqual(await tab.evaluate(() => Object.keys(sessionStorage)), [], "the verifier is used once");
  const rotated = await tab.evaluate(async () => {
    const gh = (window as any).gh;
    const before = await gh.session.current();
    const after = await gh.session.refresh(before);
    return after.refreshToken !== before.refreshToken;
  });
  assert.ok(rotated, "the session refreshes like any other");
  console.log(`redirect sign-in: app → Gatehouse's sign-in page → callback → GET /users/me → refresh: ok (${username})`);
} finally {
  await browser.close();
  app.close();
  await gatehouse.stop();
}
