// Fails when docs/openapi.json changed and src/api/schema.d.ts was not regenerated from it
// Fields with a default are optional in requests (`--default-non-nullable false`): a PATCH sends only what changes.
// (`npm run gen:api`): the console's client must type exactly the API the platform serves.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const fresh = join(mkdtempSync(join(tmpdir(), "visitlens-api-")), "schema.d.ts");
execFileSync("npx", ["openapi-typescript", "../docs/openapi.json", "--default-non-nullable", "false", "-o", fresh], { stdio: "ignore" });
if (readFileSync(fresh, "utf8") !== readFileSync("src/api/schema.d.ts", "utf8")) {
  console.error("src/api/schema.d.ts is stale: docs/openapi.json changed; run `npm run gen:api`");
  process.exit(1);
}
console.log("typed client matches docs/openapi.json");
