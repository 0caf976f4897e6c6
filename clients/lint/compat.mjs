// The spec as a compatibility promise: compares openapi/openapi.json with
// openapi/baseline.json (the spec of the last release) and fails on every
// breaking change that CHANGELOG.md's "Unreleased" section does not record.
// Breaking changes are what openapi-diff classifies so (removed operations,
// responses, required fields…), plus what it does not see but a generated
// SDK does: a removed or renamed operationId (the SDK's function name) or
// schema (its type name). A break is recorded by naming its key, in
// backticks, in that section; cutting a release copies the spec to the
// baseline.
import { readFileSync } from "node:fs";
import openapiDiff from "openapi-diff";

const path = (relative) => new URL(relative, import.meta.url).pathname;
const baselinePath = process.argv[2] ?? path("../../openapi/baseline.json");
const currentPath = process.argv[3] ?? path("../../openapi/openapi.json");
const changelogPath = process.argv[4] ?? path("../../CHANGELOG.md");

const baseline = readFileSync(baselinePath, "utf8");
const current = readFileSync(currentPath, "utf8");

const breaks = [];
const outcome = await openapiDiff.diffSpecs({
  sourceSpec: { content: baseline, location: "baseline.json", format: "openapi3" },
  destinationSpec: { content: current, location: "openapi.json", format: "openapi3" },
});
for (const difference of outcome.breakingDifferences ?? []) {
  const where = [...difference.sourceSpecEntityDetails, ...difference.destinationSpecEntityDetails]
    .map((detail) => detail.location)
    .filter((location, at, all) => all.indexOf(location) === at);
  breaks.push(`${difference.code} ${where.join(" ")}`);
}

const operations = (document) =>
  Object.values(document.paths ?? {}).flatMap((item) =>
    Object.values(item)
      .map((operation) => operation?.operationId)
      .filter(Boolean),
  );
const schemas = (document) => Object.keys(document.components?.schemas ?? {});
const [before, after] = [JSON.parse(baseline), JSON.parse(current)];
for (const id of operations(before)) {
  if (!operations(after).includes(id)) breaks.push(`operation ${id} removed`);
}
for (const name of schemas(before)) {
  if (!schemas(after).includes(name)) breaks.push(`schema ${name} removed`);
}

const changelog = readFileSync(changelogPath, "utf8");
const unreleased = changelog.split(/^## /m).find((section) => section.startsWith("Unreleased")) ?? "";
const unrecorded = breaks.filter((key) => !unreleased.includes("`" + key + "`"));
for (const key of breaks) {
  console.log(`${unrecorded.includes(key) ? "UNRECORDED" : "recorded"} breaking change: ${key}`);
}
if (unrecorded.length > 0) {
  console.error(
    `${unrecorded.length} breaking change(s) against openapi/baseline.json are not recorded in ` +
      "CHANGELOG.md's Unreleased section: name each key above in backticks there, " +
      "or undo the change.",
  );
  process.exit(1);
}
console.log(`openapi-diff and SDK names: ${breaks.length} breaking change(s), all recorded`);
