// Runs the compiled tests under Node's test runner: `unit`, `integration`
// (against the real gateway binary) and `browser` (Debian's Chromium), or
// the suites named on the command line.
import { spawnSync } from "node:child_process";
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";

const all = ["unit", "integration", "browser"];
const suites = process.argv.length > 2 ? process.argv.slice(2) : all;
const files = [];
for (const suite of suites) {
  if (!all.includes(suite)) {
    console.error(`run-tests: unknown suite ${suite} (one of ${all.join(", ")})`);
    process.exit(2);
  }
  const dir = join("build", "test", suite);
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith(".test.js")) files.push(join(dir, name));
  }
}
// Node 20 has a WebSocket only behind a flag (Node 22 has it by default).
const flags = typeof globalThis.WebSocket === "function" ? [] : ["--experimental-websocket"];
const result = spawnSync(process.execPath, [...flags, "--test", "--test-reporter=spec", ...files], {
  stdio: "inherit",
});
process.exit(result.status ?? 1);
