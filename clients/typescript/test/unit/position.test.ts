// The inbox position rule against the test vectors the gateway's and the
// Rust client's rule are checked with (crates/jim-model/tests/vectors).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isNew, resumed, skipOwn } from "../../src/cursor.js";
import type { Position } from "../../src/position.js";
import { REPO } from "../integration/gateway.js";

interface Vectors {
  resumed: { case: string; asked: Position | null; head: { epoch: string; offset: number; recovered: boolean }; keeps: Position }[];
  is_new: { case: string; position: Position | null; offset: number; new: boolean }[];
  skip_own: { case: string; position: Position; offset: number; moved: boolean; keeps: Position }[];
}

const vectors = JSON.parse(
  readFileSync(join(REPO, "crates", "jim-model", "tests", "vectors", "inbox-position.json"), "utf8"),
) as Vectors;

test("what a client keeps after B002: the shared vectors", () => {
  for (const v of vectors.resumed) {
    assert.deepEqual(resumed(v.asked ?? undefined, v.head), v.keeps, v.case);
  }
});

test("which deliveries are new, and own group messages skipped: the shared vectors", () => {
  for (const v of vectors.is_new) {
    assert.equal(isNew(v.position ?? undefined, v.offset), v.new, v.case);
  }
  for (const v of vectors.skip_own) {
    const at = { ...v.position };
    assert.deepEqual([skipOwn(at, v.offset), at], [v.moved, v.keeps], v.case);
  }
});
