import { defineConfig } from "@playwright/test";

import base from "./playwright.config";

// `make e2e` (visitlens.e2e): the console shows what the edge's scripted clip produced.
export default defineConfig({ ...base, testDir: "e2e-demo" });
