import { defineConfig } from "@playwright/test";

// `make e2e` (visitlens.e2e): the console shows what the edge's scripted clip produced.
export default defineConfig({
  testDir: "e2e-demo",
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
