import AxeBuilder from "@axe-core/playwright";
import { expect, test, type APIRequestContext, type Cookie, type Locator, type Page } from "@playwright/test";
import { readFileSync } from "node:fs";

const EMAIL = process.env.VISITLENS_E2E_EMAIL ?? "";
const MANAGER = process.env.VISITLENS_E2E_MANAGER_EMAIL ?? "";
const PASSWORD = process.env.VISITLENS_E2E_PASSWORD ?? "";
const TENANT = process.env.VISITLENS_E2E_TENANT ?? "";
const SITE = process.env.VISITLENS_E2E_SITE ?? "";
const CAMERA = process.env.VISITLENS_E2E_CAMERA ?? "";
const WORKER_KEY = process.env.VISITLENS_E2E_WORKER_KEY ?? "";
const FACE = process.env.VISITLENS_E2E_FACE ?? "";
const GROUP = process.env.VISITLENS_E2E_GROUP ?? "";
const EVENT = process.env.VISITLENS_E2E_EVENT ?? "";
const SHOTS = process.env.VISITLENS_E2E_SCREENSHOTS;

// A console error fails the test that caused it. The browser's own note of an error status that a
// test provokes on purpose (a wrong password, an ended session, a refused photo) is allowed only
// in that test, by status.
let consoleErrors: string[] = [];
let allowed: number[] = [];
function expectStatuses(...statuses: number[]): void {
  allowed = statuses;
}
test.beforeEach(({ page }) => {
  consoleErrors = [];
  allowed = [];
  page.on("console", (message) => {
    const status = /status of (\d{3})/.exec(message.text());
    if (message.type() === "error" && !(status && allowed.includes(Number(status[1])))) consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
});
test.afterEach(() => {
  expect(consoleErrors, "console errors").toEqual([]);
});

async function noSeriousViolations(page: Page): Promise<void> {
  // a dialog fading in or out is half transparent: judge the screen once it has settled
  // (endless ones, a spinner's, never settle and do not fade anything)
  await page.waitForFunction(() =>
    document.getAnimations().every((a) => a.playState !== "running" || a.effect?.getTiming().iterations === Infinity),
  );
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`)).toEqual([]);
}

async function screen(page: Page, name: string): Promise<void> {
  await noSeriousViolations(page);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

async function signIn(page: Page, password = PASSWORD, email = EMAIL): Promise<void> {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

// Sign-in is rate limited per account (10 a minute), as it should be: each account signs in
// through the form once, and later tests start from that session — its refresh cookie (HttpOnly:
// the page itself never holds it). A refresh rotates the cookie, so after each test the
// account's newest cookies are kept for the next.
const sessions = new Map<string, Cookie[]>();
let signedInAs: string | null = null;

async function open(page: Page, path: string, email = EMAIL): Promise<void> {
  const kept = sessions.get(email);
  if (kept) await page.context().addCookies(kept);
  signedInAs = email;
  await page.goto(path);
  if (!kept) {
    await signIn(page, PASSWORD, email);
    await keepSession(page, email);
  }
  await expect(page).toHaveURL(new RegExp(`${path.replace(/[?]/g, "\\?")}$`));
}

async function keepSession(page: Page, email: string): Promise<void> {
  await expect.poll(async () => (await page.context().cookies()).some((c) => c.name === "visitlens_refresh")).toBe(true);
  signedInAs = email;
  sessions.set(email, await page.context().cookies());
}

test.afterEach(async ({ page }) => {
  if (!signedInAs) return;
  const cookies = await page.context().cookies();
  if (cookies.some((c) => c.name === "visitlens_refresh")) sessions.set(signedInAs, cookies);
  else sessions.delete(signedInAs); // signed out, or the session ended: the next test signs in
  signedInAs = null;
});

async function token(request: APIRequestContext, grant: Record<string, string>): Promise<string> {
  const response = await request.post("/v1/auth/token", { data: grant });
  expect(response.ok()).toBeTruthy();
  return (await response.json()).access_token as string;
}

/** A site in a multi-select of a dialog; the list is closed again (it stays open after a pick in
 * multiple mode and would lie over the dialog's buttons). */
async function pickSite(page: Page, dialog: Locator, site: string): Promise<void> {
  await dialog.getByLabel("Sites").click();
  await page.locator(".ant-select-dropdown:not(.ant-select-dropdown-hidden)").getByTitle(site, { exact: true }).click();
  await dialog.getByLabel("Name").click();
  await expect(page.locator(".ant-select-dropdown:not(.ant-select-dropdown-hidden)")).toHaveCount(0);
}

/** The key shown once: there, then dismissed (optionally a screenshot of it first). */
async function closeSecret(page: Page, shot?: string): Promise<void> {
  const dialog = page.getByRole("dialog", { name: "The key, shown once" });
  await expect(dialog.getByTestId("secret-once")).toContainText(/\S{20,}/);
  if (shot) await screen(page, shot);
  await dialog.getByRole("button", { name: "I have stored it" }).click();
  await expect(dialog).toBeHidden();
}

/** Data rows of the tables on the page (not the expanded rows that hold a nested table). */
function tableRow(page: Page) {
  return page.locator("tr.ant-table-row");
}

/** The open Popconfirm's button (antd keeps closed ones in the page, hidden). */
async function confirmPop(page: Page, name: string): Promise<void> {
  await page.locator(".ant-popconfirm:not(.ant-popover-hidden)").getByRole("button", { name }).click();
}

/** The admin's access token for the API checks: one password grant for the whole run (a token
 * lives 15 minutes), never the browser's cookie. */
let adminAccess: string | null = null;
async function adminToken(request: APIRequestContext): Promise<string> {
  adminAccess ??= await token(request, { grant_type: "password", email: EMAIL, password: PASSWORD });
  return adminAccess;
}

function lastSevenDays(): { start: string; end: string } {
  const iso = (d: Date) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const end = new Date();
  const start = new Date(end);
  start.setDate(start.getDate() - 6);
  return { start: iso(start), end: iso(end) };
}

test("sign-in keeps the page asked for; a wrong password is refused", async ({ page }) => {
  expectStatuses(401);
  await page.goto("/overview");
  await expect(page).toHaveURL(/\/sign-in\?next=%2Foverview/);
  await screen(page, "sign-in");
  await signIn(page, "not-the-password");
  await expect(page.getByRole("alert")).toContainText("Wrong email or password");
  await signIn(page);
  await expect(page).toHaveURL(/\/overview$/);
  await keepSession(page, EMAIL);
});

test("the overview shows exactly the report API's numbers; an ended session returns to sign-in", async ({ page, request }) => {
  expectStatuses(401);
  const report = await request.get(`/v1/tenants/${TENANT}/reports/visits`, {
    params: { ...lastSevenDays(), granularity: "day" },
    headers: { authorization: `Bearer ${await adminToken(request)}` },
  });
  expect(report.ok()).toBeTruthy();
  const totals = (await report.json()).totals;
  expect(totals.visits).toBeGreaterThan(0);

  await open(page, "/overview");
  const tile = (title: string) => page.locator(".ant-statistic").filter({ hasText: title }).locator(".ant-statistic-content");
  await expect(tile("Visits")).toHaveText(String(totals.visits));
  await expect(tile("New")).toHaveText(String(totals.new_visits));
  await expect(tile("Returning")).toHaveText(String(totals.returning_visits));
  await expect(page.getByRole("link", { name: "A", exact: true })).toBeVisible(); // the league table links to the site
  await screen(page, "overview");

  // nothing of the session is where a script of the page could read it
  expect(await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }) + document.cookie)).not.toMatch(/vlr_|eyJ/);
  const refresh = (await page.context().cookies()).find((c) => c.name === "visitlens_refresh");
  // HttpOnly, same-site only, sent to the token endpoint alone (Secure too behind TLS: the API test)
  expect(refresh?.httpOnly && refresh.sameSite === "Strict" && refresh.path === "/v1/auth/token").toBeTruthy();

  // the session ends (revoked elsewhere): back to sign-in, with the page to return to
  if (refresh) await page.context().addCookies([{ ...refresh, value: "vlr_x_y" }]);
  await page.reload();
  await expect(page).toHaveURL(/\/sign-in\?next=%2Foverview/);
});

test("a site manager sees the screens of the role; the others say 'not allowed'", async ({ page }) => {
  await open(page, "/overview", MANAGER);
  const nav = page.getByRole("menu");
  await expect(nav.getByText("Reports")).toBeVisible();
  await expect(nav.getByText("Customers")).toHaveCount(0);
  await expect(nav.getByText("Audit log")).toHaveCount(0);
  await page.goto("/audit");
  await expect(page.getByText("Not allowed")).toBeVisible();
  await noSeriousViolations(page);
  await page.goto("/customers");
  await expect(page.getByText("Not allowed")).toBeVisible();
});

test("the reports equal the API's, and the CSV equals the shown totals", async ({ page, request }) => {
  const response = await request.get(`/v1/tenants/${TENANT}/reports/visits`, {
    params: { ...lastSevenDays(), granularity: "day" },
    headers: { authorization: `Bearer ${await adminToken(request)}` },
  });
  const api = await response.json();
  await open(page, "/reports");
  const totals = page.getByTestId("series-totals").locator("td");
  await expect(totals.nth(1)).toHaveText(String(api.totals.visits));
  await expect(totals.nth(2)).toHaveText(String(api.totals.new_visits));
  await expect(totals.nth(3)).toHaveText(String(api.totals.returning_visits));
  await expect(totals.nth(4)).toHaveText(String(api.totals.unique_visitors));
  // every bucket the API sent, in order, with its number
  const rows = page.getByTestId("series-table").locator("tbody tr.ant-table-row");
  await expect(rows).toHaveCount(api.buckets.length);
  for (let i = 0; i < api.buckets.length; i++) await expect(rows.nth(i).locator("td").nth(1)).toHaveText(String(api.buckets[i].visits));
  await expect(page.getByTestId("freshness")).toContainText("Statistics include visits up to");
  await expect(page.getByRole("table", { name: "Visits by weekday and hour" })).toBeVisible();
  await screen(page, "reports");

  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  const file = await (await download).path();
  const lines = readFileSync(file, "utf8").trim().split("\n");
  const total = (lines[lines.length - 1] ?? "").split(",");
  expect(total.slice(0, 5)).toEqual(["total", String(api.totals.visits), String(api.totals.new_visits), String(api.totals.returning_visits), String(api.totals.unique_visitors)]);
  expect(lines.length - 2).toBe(api.buckets.length);
});

test("sites and cameras: create, validate, edit, a worker key shown once, delete", async ({ page }) => {
  await open(page, "/sites");
  await page.getByRole("button", { name: "Add site" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Name").fill("");
  await dialog.getByRole("button", { name: "Save" }).click();
  await expect(dialog.getByText("Please enter Name")).toBeVisible(); // nothing sent without a name
  await dialog.getByLabel("Name").fill("Lisbon flagship");
  await dialog.getByLabel("Time zone").fill("Europe/Lisb");
  await page.getByTitle("Europe/Lisbon").click();
  await dialog.getByLabel("Visit window (seconds)").fill("2400");
  await dialog.getByRole("button", { name: "Save" }).click();
  const row = tableRow(page).filter({ hasText: "Lisbon flagship" });
  await expect(row).toContainText("Europe/Lisbon");
  await expect(row).toContainText("40 min");

  await row.getByRole("button", { name: "Edit" }).click();
  await page.getByRole("dialog").getByLabel("Name").fill("Lisbon Chiado");
  await page.getByRole("dialog").getByRole("button", { name: "Save" }).click();
  const renamed = tableRow(page).filter({ hasText: "Lisbon Chiado" });
  await expect(renamed).toBeVisible();

  await renamed.getByRole("button", { name: "Expand row" }).click();
  await page.getByRole("button", { name: "Add camera" }).click();
  await page.getByRole("dialog").getByLabel("Name").fill("entrance");
  await page.getByRole("dialog").getByRole("button", { name: "Save" }).click();
  const camera = tableRow(page).filter({ hasText: "entrance" });
  await expect(camera).toContainText("rtsp");
  await camera.getByRole("button", { name: "Edge key" }).click();
  await closeSecret(page, "sites");

  await camera.getByRole("button", { name: "Delete" }).click();
  await confirmPop(page, "Delete");
  await expect(tableRow(page).filter({ hasText: "entrance" })).toHaveCount(0);
  await renamed.getByRole("button", { name: "Delete" }).first().click();
  await confirmPop(page, "Delete");
  await expect(tableRow(page).filter({ hasText: "Lisbon Chiado" })).toHaveCount(0);
});

test("staff: a photo enrolled with its quality, a refused one with its reason", async ({ page }) => {
  expectStatuses(422);
  await open(page, "/staff");
  await page.getByRole("button", { name: "Add staff member" }).click();
  await page.getByRole("dialog").getByLabel("Name").fill("Dana Store");
  await page.getByRole("dialog").getByRole("button", { name: "Save" }).click();
  const drawer = page.locator(".ant-drawer");
  await expect(drawer.getByText("Dana Store")).toBeVisible();
  const input = drawer.locator("input[type=file]");
  await input.setInputFiles(FACE);
  await expect(page.getByTestId("upload-outcomes")).toContainText(/Quality \d\.\d\d/);
  await expect(drawer.locator("tbody tr.ant-table-row")).toHaveCount(1); // enrolled, listed
  await expect(drawer.locator("tbody img")).toHaveAttribute("src", /^blob:/); // the photo itself
  await input.setInputFiles(GROUP);
  await expect(page.getByTestId("upload-outcomes")).toContainText("Refused: ");
  await expect(page.getByTestId("upload-outcomes")).toContainText("must show exactly one person");
  await screen(page, "staff");
});

test("live monitor: a face.detected event appears in under 2 seconds, with its snapshot", async ({ page, request }) => {
  await open(page, "/monitor");
  await expect(page.getByTestId("stream-state")).toHaveText("Live");
  const worker = await token(request, { grant_type: "api_key", api_key: WORKER_KEY });
  const auth = { authorization: `Bearer ${worker}` };
  const event = JSON.parse(readFileSync(EVENT, "utf8"));
  // as the edge does: a presigned upload of the snapshot, then the event naming its key
  const grant = await request.post(`/v1/tenants/${TENANT}/sites/${SITE}/cameras/${CAMERA}/snapshots`, {
    headers: auth,
    data: { track_id: event.data.track_id, captured_at: event.data.first_seen },
  });
  expect(grant.status()).toBe(201);
  const { key, url } = await grant.json();
  const put = await request.put(url, { data: readFileSync(FACE), headers: { "content-type": "image/jpeg" } });
  expect(put.ok()).toBeTruthy();
  event.data.snapshot_key = key;

  const sent = Date.now();
  const ingested = await request.post("/v1/events", { headers: { ...auth, "content-type": "application/cloudevents+json" }, data: JSON.stringify(event) });
  expect(ingested.ok()).toBeTruthy();
  const { visit_id: visit } = await ingested.json();
  const item = page.locator(`[data-visit="${visit}"]`);
  await expect(item).toBeVisible({ timeout: 2000 });
  expect(Date.now() - sent).toBeLessThan(2000);
  await expect(item.getByText("New", { exact: true })).toBeVisible();
  await expect(item.locator("img")).toHaveAttribute("src", /^blob:/);
  await screen(page, "monitor");
});

async function customers(request: APIRequestContext): Promise<{ id: string; visit_count: number }[]> {
  const response = await request.get(`/v1/persons/${TENANT}/customers`, { headers: { authorization: `Bearer ${await adminToken(request)}` } });
  return (await response.json()).items;
}

test("customers: a likely duplicate reviewed face to face, merged in one click, the merge undone", async ({ page, request }) => {
  const people = await customers(request);
  const twice = people.find((c) => c.visit_count === 2)!;
  const once = people.find((c) => c.visit_count === 1)!; // suggested as twice's duplicate (test_console.py)
  await open(page, "/customers");
  await page.getByRole("link", { name: "Review likely duplicates" }).click();
  await expect(page).toHaveURL(/\/customers\/duplicates$/);
  const pair = page.getByTestId("duplicate-pair");
  await expect(pair).toHaveCount(1);
  await expect(pair.getByRole("link", { name: once.id.slice(0, 8) })).toBeVisible();
  await expect(pair.getByRole("link", { name: twice.id.slice(0, 8) })).toBeVisible();
  await expect(pair).toContainText("Similarity: 0.470");
  await screen(page, "duplicates");
  await pair.getByRole("button", { name: "Same person: merge" }).click();
  await expect(page.getByText("Merged: the newer customer's visits now belong to the older one")).toBeVisible();
  await expect(page.getByText("Nothing to review")).toBeVisible();
  expect((await customers(request)).find((c) => c.id === twice.id)?.visit_count).toBe(3);
  await page.getByRole("button", { name: "Undo merge" }).click();
  await expect(page.getByText("Merge undone: the two are separate customers again")).toBeVisible();
  const after = await customers(request);
  expect(after.find((c) => c.id === once.id)?.visit_count).toBe(1);
  expect(after.find((c) => c.id === twice.id)?.visit_count).toBe(2);
});

test("customers: merge two people, undo the merge", async ({ page, request }) => {
  const people = await customers(request);
  const twice = people.find((c) => c.visit_count === 2);
  const once = people.find((c) => c.visit_count === 1);
  expect(twice && once).toBeTruthy();
  await open(page, "/customers");
  await expect(page.getByRole("link", { name: twice!.id.slice(0, 8) })).toBeVisible();
  await page.getByLabel("Search by customer id").fill(twice!.id.slice(0, 8));
  await page.getByLabel("Search by customer id").press("Enter");
  await expect(page.locator("tbody tr.ant-table-row")).toHaveCount(1);
  await expect(page.getByRole("link", { name: twice!.id.slice(0, 8) })).toBeVisible();
  await screen(page, "customers");

  await page.goto(`/customers/${twice!.id}`);
  await expect(page.getByTestId("visit-count")).toHaveText("2");
  await page.getByRole("button", { name: "Merge another person into this one" }).click();
  await page.getByRole("dialog").getByLabel("Id of the person to merge into this one").fill(once!.id);
  await page.getByRole("dialog").getByRole("button", { name: "Confirm" }).click();
  await expect(page.getByText(`Merged ${once!.id.slice(0, 8)}`)).toBeVisible();
  await expect(page.getByTestId("visit-count")).toHaveText("3");
  await screen(page, "person");
  await page.getByRole("button", { name: "Undo merge" }).click();
  await expect(page.getByTestId("visit-count")).toHaveText("2");
  const after = await customers(request);
  expect(after.find((c) => c.id === once!.id)?.visit_count).toBe(1);
});

test("customers: erase with a typed confirmation and a receipt", async ({ page, request }) => {
  const once = (await customers(request)).find((c) => c.visit_count === 1)!;
  await open(page, `/customers/${once.id}`);
  await page.getByRole("button", { name: "Erase" }).click();
  const field = page.getByRole("dialog").getByLabel(/Type the first 8 characters/);
  await field.fill("nope");
  await page.getByRole("dialog").getByRole("button", { name: "Erase for good" }).click();
  await expect(page.getByText("That is not the start of this id")).toBeVisible();
  await field.fill(once.id.slice(0, 8));
  await page.getByRole("dialog").getByRole("button", { name: "Erase for good" }).click();
  await expect(page.getByTestId("receipt")).toContainText(/Receipt [0-9a-f-]{36}/);
  const gone = await request.get(`/v1/persons/${TENANT}/customers/${once.id}`, { headers: { authorization: `Bearer ${await adminToken(request)}` } });
  expect(gone.status()).toBe(404);
});

test("users and API keys; the audit log with its chain verified", async ({ page }) => {
  expectStatuses(422); // the key without its site, refused by the API and shown under the field
  await open(page, "/access");
  await page.getByRole("button", { name: "Add user" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Email").fill(`clerk-${Date.now()}@example.com`);
  await dialog.getByLabel("Name").fill("Clerk");
  await pickSite(page, dialog, "A");
  await dialog.getByLabel("Password").fill("short");
  await dialog.getByRole("button", { name: "Save" }).click();
  await expect(dialog.getByText("Password must be at least 12 characters")).toBeVisible();
  await dialog.getByLabel("Password").fill("a-long-enough-passphrase");
  await dialog.getByRole("button", { name: "Save" }).click();
  await expect(tableRow(page).filter({ hasText: "Clerk" })).toContainText("Site manager");
  await screen(page, "users");

  await page.getByRole("tab", { name: "API keys" }).click();
  await page.getByRole("button", { name: "Create API key" }).click();
  const keyDialog = page.getByRole("dialog");
  await keyDialog.getByLabel("Name").fill("back-office export");
  await keyDialog.getByRole("button", { name: "Save" }).click();
  await expect(keyDialog.getByText("a worker belongs to exactly one site")).toBeVisible();
  await pickSite(page, keyDialog, "A");
  await keyDialog.getByRole("button", { name: "Save" }).click();
  await closeSecret(page);
  const key = tableRow(page).filter({ hasText: "back-office export" });
  await key.getByRole("button", { name: "Revoke" }).click();
  await confirmPop(page, "Revoke");
  await expect(key).toContainText("Revoked");

  await page.goto("/audit");
  await expect(page.getByTestId("chain-status")).toContainText("The chain is intact");
  await page.getByLabel("Action").fill("api_key.");
  await page.getByLabel("Action").press("Enter");
  await expect(tableRow(page).filter({ hasText: "api_key.revoke" })).toBeVisible();
  await expect(tableRow(page).filter({ hasText: "user.create" })).toHaveCount(0);
  await screen(page, "audit");
});
