import { defineConfig } from "@playwright/test";

// Driven by tests/web/test_console.py against the real stack (`visitlens dev` serving the built
// console at `/`); Debian's Chromium, never a downloaded browser.
export default defineConfig({
  testDir: "e2e",
  timeout: 60_000,
  workers: 1,
  reporter: [["list"]],
  use: {
    baseURL: process.env.VISITLENS_E2E_BASE,
    browserName: "chromium",
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"],
    },
  },
});
