// Generates a client with @hey-api/openapi-ts, a common SDK generator, and
// fails if any generated name had to be disambiguated with a number (as
// `TokenResponse2` was, when an operation id collided with a schema name), or
// if an operation lacks its request or response types.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@hey-api/openapi-ts";

const spec = new URL("../../openapi/openapi.json", import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), "gatehouse-hey-api-"));
try {
  await createClient({ input: spec, output: out, logs: { level: "silent" } });
  const types = readFileSync(join(out, "types.gen.ts"), "utf8");
  const names = [...types.matchAll(/^export type (\w+)/gm)].map((m) => m[1]);
  const numbered = names.filter((name) => /\d$/.test(name));
  const document = JSON.parse(readFileSync(spec, "utf8"));
  const missing = [];
  for (const item of Object.values(document.paths)) {
    for (const operation of Object.values(item)) {
      const base = operation.operationId[0].toUpperCase() + operation.operationId.slice(1);
      for (const suffix of ["Data", "Responses"]) {
        if (!names.includes(base + suffix)) missing.push(base + suffix);
      }
    }
  }
  if (numbered.length > 0 || missing.length > 0) {
    console.error(`numbered names: ${numbered.join(", ") || "none"}`);
    console.error(`missing names: ${missing.join(", ") || "none"}`);
    process.exit(1);
  }
  console.log(`@hey-api/openapi-ts: ${names.length} clean type names`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
