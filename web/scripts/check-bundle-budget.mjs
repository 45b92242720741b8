// The JavaScript a first visit downloads (the entry chunk and its static imports, gzip) must stay
// within the budget; lazy routes load later and are not counted.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET = 400 * 1024;
const manifest = JSON.parse(readFileSync("dist/.vite/manifest.json", "utf8"));
const entry = Object.values(manifest).find((chunk) => chunk.isEntry);
const seen = new Set();
function visit(key) {
  const chunk = manifest[key] ?? Object.values(manifest).find((c) => c.file === key);
  if (!chunk || seen.has(chunk.file)) return;
  seen.add(chunk.file);
  for (const child of chunk.imports ?? []) visit(child);
}
visit(Object.keys(manifest).find((k) => manifest[k] === entry));
let total = 0;
for (const file of seen) {
  if (!file.endsWith(".js")) continue;
  const size = gzipSync(readFileSync(join("dist", file))).length;
  total += size;
  console.log(`${file}: ${(size / 1024).toFixed(1)} KiB gzip`);
}
console.log(`initial JavaScript: ${(total / 1024).toFixed(1)} KiB gzip (budget ${BUDGET / 1024} KiB)`);
if (total > BUDGET) process.exit(1);
