// Gatehouse's own pages in a real browser, with JavaScript off: a reset link
// (printed by `gatehouse user reset-link`, as an install without mail gets
// one) opens the form, the new password is set with the browser's own form
// submission, and the verification page confirms only on its button.
// Screenshots of each step, at desktop and phone widths, go to $ARTIFACTS_DIR.
import assert from "node:assert/strict";
import { execSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.GATEHOUSE_URL ?? "http://127.0.0.1:8080";
const resetLinkCommand = process.env.GATEHOUSE_RESET_LINK_COMMAND;
assert.ok(resetLinkCommand, "GATEHOUSE_RESET_LINK_COMMAND: `gatehouse user reset-link …` without --username");
const artifacts = process.env.ARTIFACTS_DIR ?? "artifacts";
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const username = `pages_${Date.now().toString(36)}`;
const password = "correct horse battery staple";
const newPassword = "a brand new passphrase";

const address = `${username}@example.org`;
const registered = await fetch(`${base}/users`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ username, password, email: address }),
});
assert.equal(registered.status, 201, await registered.text());
const link = execSync(`${resetLinkCommand} --username ${username}`, { encoding: "utf8" }).trim();
assert.ok(link.startsWith(`${base}/account/reset-password?token=`), link);

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

try {
  // A phone, without JavaScript: the form still works.
  const phone = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  const page = await phone.newPage();
  const blocked = [];
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) blocked.push(message.text());
  });
  const opened = await page.goto(link);
  assert.equal(opened.status(), 200);
  assert.equal(await page.locator("h1").textContent(), "Choose a new password");
  await shot(page, "reset-password-form");

  // Two different passwords: the form comes back saying so.
  await page.fill("#new_password", newPassword);
  await page.fill("#confirm_password", "something else entirely");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.match(await page.locator(".error").textContent(), /differ/);
  await shot(page, "reset-password-mismatch");

  await page.fill("#new_password", newPassword);
  await page.fill("#confirm_password", newPassword);
  const [done] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(done.status(), 200);
  assert.equal(await page.locator("h1").textContent(), "Your password is changed");
  await shot(page, "reset-password-done");
  // The stylesheet was allowed by the page's policy: nothing was refused
  // (Chromium reports refusals on the console, with scripts off too).
  assert.deepEqual(blocked, []);
  assert.equal(await page.locator("button, .error").count(), 0);

  // The link is spent.
  const again = await page.goto(link);
  assert.equal(again.status(), 200, "opening it shows the form");
  await page.fill("#new_password", "yet another passphrase");
  await page.fill("#confirm_password", "yet another passphrase");
  const [spent] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(spent.status(), 400);
  assert.equal(await page.locator("h1").textContent(), "This link does not work");
  await shot(page, "reset-password-spent");

  const login = await fetch(`${base}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: newPassword }),
  });
  assert.equal(login.status, 200, await login.text());

  // A desktop browser: the verification page for a link that is not one.
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const verify = await desktop.newPage();
  const shown = await verify.goto(`${base}/account/verify-email?token=not-a-real-token`);
  assert.equal(shown.status(), 200);
  await shot(verify, "verify-email-form");
  const [refused] = await Promise.all([verify.waitForNavigation(), verify.click("button[type=submit]")]);
  assert.equal(refused.status(), 400);
  await shot(verify, "verify-email-refused");

  // The verification mail registration sent, as a mail program shows its
  // HTML part (the server writes mails to MAIL_DIR).
  const html = await htmlOfMailTo(address);
  const reader = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 800, height: 900 } });
  const mail = await reader.newPage();
  await mail.setContent(html);
  assert.equal(await mail.locator("h1").textContent(), "Confirm your email address for Gatehouse");
  assert.equal(await mail.locator("img").count(), 0, "no images, no tracking pixel");
  await shot(mail, "mail-verification");

  console.log(`account pages: reset form → mismatch → done → spent, verify refused: ok (${username})`);
} finally {
  await browser.close();
}

/** The HTML part of the first mail to `to` in MAIL_DIR (quoted-printable decoded). */
async function htmlOfMailTo(to) {
  const dir = process.env.MAIL_DIR;
  assert.ok(dir, "MAIL_DIR: the server's --mail-dir");
  for (let i = 0; i < 100; i++) {
    for (const name of readdirSync(dir).filter((n) => n.endsWith(".eml"))) {
      const eml = readFileSync(join(dir, name), "utf8");
      if (!eml.includes(`To: ${to}`)) continue;
      const part = /Content-Type: text\/html[^]*?\r?\n\r?\n([^]*?)\r?\n--/.exec(eml);
      assert.ok(part, eml);
      const headers = eml.slice(eml.indexOf("Content-Type: text/html"), part.index + part[0].indexOf(part[1]));
      const body = part[1];
      if (/Content-Transfer-Encoding: base64/i.test(headers)) return Buffer.from(body, "base64").toString("utf8");
      if (/Content-Transfer-Encoding: quoted-printable/i.test(headers)) {
        const bytes = body.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
        return Buffer.from(bytes, "latin1").toString("utf8");
      }
      return body;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no mail to ${to} in ${dir}`);
}
