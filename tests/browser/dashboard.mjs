// The dashboard in headless Chromium, as an operator uses it. Driven by
// host/tests/it/dashboard.rs, which starts `crmsync serve` against the
// sandbox and checks the server side afterwards. Input (environment):
//   CRMSYNC_URL       the admin API's base URL
//   ADMIN_TOKEN       STANDARD_TOKEN
//   RECORD_ID         a Salesforce id whose record has an error
//   RECORD_ERROR      text the error's message contains
//   ROLLED_BACK_TO    the mapper version a rollback brings back
//   SCREENSHOTS       a folder for the screenshots
// Exit status 0 when every step held; otherwise the failed step on stderr.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import path from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = env("CRMSYNC_URL");
const shots = env("SCREENSHOTS");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

const pageErrors = [];

async function signedIn(token) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(base + "/");
  await page.fill("#token", token);
  await page.click("#login-form button");
  await page.waitForSelector("#connections tbody tr");
  return page;
}

const mapperRow = (page) => page.locator('#active tr[data-role="mapper"]');

try {
  // A wrong token is refused at the door.
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(base + "/");
    await page.fill("#token", "not-a-token");
    await page.click("#login-form button");
    await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0);
    assert.match(await page.textContent("#login-error"), /not one of the service's tokens/);
    await context.close();
  }

  // The standard token: state, errors, a record lookup; a rollback is refused.
  const standard = await signedIn(env("STANDARD_TOKEN"));
  const row = standard.locator('#connections tr[data-connection="main"]');
  assert.match(await row.textContent(), /activecampaign/);
  await standard.waitForSelector("#errors tbody tr");
  await standard.waitForSelector("#runs tbody tr");
  await standard.fill("#lookup", env("RECORD_ID"));
  await standard.click("#lookup-form button");
  await standard.waitForSelector("#record .record-error");
  assert.ok((await standard.textContent("#record")).includes(env("RECORD_ERROR")), "the record's error is shown");
  await standard.screenshot({ path: path.join(shots, "dashboard.png"), fullPage: true });

  const before = await mapperRow(standard).locator(".active-version").textContent();
  await mapperRow(standard).getByRole("button", { name: "Roll back" }).click();
  await standard.waitForSelector("#message.error");
  assert.match(await standard.textContent("#message"), /needs the admin token/);
  assert.equal(await mapperRow(standard).locator(".active-version").textContent(), before, "nothing changed");
  await standard.screenshot({ path: path.join(shots, "dashboard-refused.png") });

  // The admin token rolls the mapper back.
  const admin = await signedIn(env("ADMIN_TOKEN"));
  await admin.waitForSelector('#active tr[data-role="mapper"]');
  await mapperRow(admin).getByRole("button", { name: "Roll back" }).click();
  await admin.waitForSelector("#message.info");
  await admin.waitForFunction(
    (want) => document.querySelector('#active tr[data-role="mapper"] .active-version')?.textContent === want,
    env("ROLLED_BACK_TO"),
  );
  await admin.screenshot({ path: path.join(shots, "dashboard-rolled-back.png") });
  assert.deepEqual(pageErrors, [], "no script error on the page");
  console.log("dashboard: every step held");
} finally {
  await browser.close();
}
