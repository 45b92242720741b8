import { expect, test } from "@playwright/test";

test("the console shows today's visits as counted", async ({ page }) => {
  await page.goto("/overview");
  await page.getByLabel("Email").fill(process.env.VISITLENS_E2E_EMAIL ?? "");
  await page.getByLabel("Password").fill(process.env.VISITLENS_E2E_PASSWORD ?? "");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Today", { exact: true }).click();
  const visits = page.locator(".ant-statistic").filter({ hasText: "Visits" }).locator(".ant-statistic-content");
  await expect(visits).toHaveText(process.env.VISITLENS_E2E_VISITS ?? "-");
  await page.screenshot({ path: `${process.env.VISITLENS_E2E_SCREENSHOTS}/console.png`, fullPage: true });
});
