import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";

const EMAIL = process.env.VISITLENS_E2E_EMAIL ?? "";
const PASSWORD = process.env.VISITLENS_E2E_PASSWORD ?? "";
const TENANT = process.env.VISITLENS_E2E_TENANT ?? "";
const SHOTS = process.env.VISITLENS_E2E_SCREENSHOTS;

// A console error fails the test that caused it (the browser's own note of a 401 the test
// provokes on purpose, a wrong password or an ended session, is not an error of the console).
const EXPECTED = /^Failed to load resource: the server responded with a status of 401/;
let consoleErrors: string[] = [];
test.beforeEach(({ page }) => {
  consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error" && !EXPECTED.test(message.text())) consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
});
test.afterEach(() => {
  expect(consoleErrors, "console errors").toEqual([]);
});

async function noSeriousViolations(page: Page): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`)).toEqual([]);
}

async function signIn(page: Page, password = PASSWORD): Promise<void> {
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

function lastSevenDays(): { start: string; end: string } {
  const iso = (d: Date) =>
    `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const end = new Date();
  const start = new Date(end);
  start.setDate(start.getDate() - 6);
  return { start: iso(start), end: iso(end) };
}

test("sign-in keeps the page asked for; a wrong password is refused", async ({ page }) => {
  await page.goto("/overview");
  await expect(page).toHaveURL(/\/sign-in\?next=%2Foverview/);
  await noSeriousViolations(page);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/sign-in.png` });
  await signIn(page, "not-the-password");
  await expect(page.getByRole("alert")).toContainText("Wrong email or password");
  await signIn(page);
  await expect(page).toHaveURL(/\/overview$/);
});

test("the overview shows exactly the report API's numbers", async ({ page, request }) => {
  const grant = await request.post("/v1/auth/token", {
    data: { grant_type: "password", email: EMAIL, password: PASSWORD },
  });
  expect(grant.ok()).toBeTruthy();
  const token = (await grant.json()).access_token as string;
  const period = lastSevenDays();
  const report = await request.get(`/v1/tenants/${TENANT}/reports/visits`, {
    params: { ...period, granularity: "day" },
    headers: { authorization: `Bearer ${token}` },
  });
  expect(report.ok()).toBeTruthy();
  const totals = (await report.json()).totals;
  expect(totals.visits).toBeGreaterThan(0);

  await page.goto("/overview");
  await signIn(page);
  const tile = (title: string) => page.locator(".ant-statistic").filter({ hasText: title }).locator(".ant-statistic-content");
  await expect(tile("Visits")).toHaveText(String(totals.visits));
  await expect(tile("New")).toHaveText(String(totals.new_visits));
  await expect(tile("Returning")).toHaveText(String(totals.returning_visits));
  await noSeriousViolations(page);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/overview.png`, fullPage: true });

  // the session ends (revoked elsewhere): back to sign-in, with the page to return to
  await page.evaluate(() => {
    const raw = sessionStorage.getItem("visitlens.session");
    if (raw) sessionStorage.setItem("visitlens.session", JSON.stringify({ ...JSON.parse(raw), accessToken: "x", refreshToken: "vlr_x_y" }));
  });
  await page.reload();
  await expect(page).toHaveURL(/\/sign-in\?next=%2Foverview/);
});
