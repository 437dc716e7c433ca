import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay } from "../../src/index.js";

test("delays grow by the factor from the initial delay up to the maximum", () => {
  const top = () => 0; // no jitter drawn: the ceiling itself
  const options = { initialDelayMs: 100, maxDelayMs: 5_000, factor: 2 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 30, 1000].map((attempt) => backoffDelay(attempt, options, top)),
    [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000],
  );
});

test("every delay stays within [(1 - jitter) x ceiling, ceiling], whatever the draw", () => {
  for (const jitter of [0, 0.25, 0.5, 1]) {
    const options = { initialDelayMs: 250, maxDelayMs: 15_000, factor: 2, jitter };
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = Math.min(15_000, 250 * 2 ** attempt);
      for (const draw of [0, 0.001, 0.5, 0.999_999]) {
        const delay = backoffDelay(attempt, options, () => draw);
        assert.ok(delay <= ceiling, `attempt ${attempt} draw ${draw}: ${delay} > ${ceiling}`);
        assert.ok(delay >= Math.floor((1 - jitter) * ceiling), `attempt ${attempt} draw ${draw}: ${delay} too short`);
      }
    }
  }
});

test("the defaults: 250 ms first, 15 s at most, half of each delay random", () => {
  assert.equal(backoffDelay(0, {}, () => 0), 250);
  assert.equal(backoffDelay(0, {}, () => 0.999_999), 125);
  assert.equal(backoffDelay(100, {}, () => 0), 15_000);
  // Real randomness spreads clients out: 1,000 draws are not all alike.
  const draws = new Set(Array.from({ length: 1_000 }, () => backoffDelay(6)));
  assert.ok(draws.size > 100, `only ${draws.size} distinct delays`);
  for (const d of draws) assert.ok(d >= 7_500 && d <= 15_000, String(d));
});

test("a jitter outside [0, 1] is clamped, never a negative delay", () => {
  assert.equal(backoffDelay(0, { jitter: 5 }, () => 0.999_999), 0);
  assert.equal(backoffDelay(0, { jitter: -1 }, () => 0.5), 250);
});
