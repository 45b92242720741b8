/// <reference types="vitest" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The console is served by the platform at `/` (the local gateway in `make dev`/`make demo`, a
// static web service behind the same HTTPRoute in a cluster) and calls the HTTP functions on the
// same origin, so no CORS and a strict Content-Security-Policy ("connect-src 'self'").
export default defineConfig({
  plugins: [react()],
  build: {
    manifest: true,
    sourcemap: false,
    rollupOptions: {
      output: {
        // antd is not one chunk: each lazy screen brings the components it uses, so the first
        // visit (sign-in) downloads only what the shell needs (checked by check-bundle-budget)
        manualChunks: {
          react: ["react", "react-dom", "react-router-dom"],
        },
      },
    },
  },
  server: { proxy: { "/v1": "http://127.0.0.1:8080" } },
  // unit tests only: the browser tests (e2e/) run in Playwright against the real stack
  test: { environment: "jsdom", globals: true, include: ["src/**/*.test.{ts,tsx}"] },
});
