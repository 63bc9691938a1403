import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePattern, checkPatternFits, keptPerRow, targetSparsity } from "../../src/prune/pattern.js";
import { UsageError } from "../../src/errors.js";

test("parsePattern accepts fractions and N:M (N kept of every M)", () => {
  assert.deepEqual(parsePattern("0.5"), { kind: "unstructured", sparsity: 0.5 });
  assert.deepEqual(parsePattern("0"), { kind: "unstructured", sparsity: 0 });
  assert.deepEqual(parsePattern(".75"), { kind: "unstructured", sparsity: 0.75 });
  assert.deepEqual(parsePattern("2:4"), { kind: "nm", n: 2, m: 4 });
  assert.deepEqual(parsePattern("4:8"), { kind: "nm", n: 4, m: 8 });
  assert.equal(targetSparsity(parsePattern("1:4")), 0.75);
  assert.equal(keptPerRow(parsePattern("2:4"), 16), 8);
  assert.equal(keptPerRow(parsePattern("0.3"), 10), 7);
});

test("parsePattern rejects out-of-range and junk with clear messages", () => {
  const bad: [string, RegExp][] = [
    ["1", /must be in \[0, 1\), got 1/],
    ["1.5", /must be in \[0, 1\)/],
    ["-0.1", /must be in \[0, 1\)/],
    ["4:4", /N < M .* got 4 ≥ 4/],
    ["5:4", /N < M/],
    ["0:4", /N ≥ 1/],
    ["half", /expected a fraction in \[0, 1\) such as 0.5, or N:M such as 2:4/],
    ["2:", /expected a fraction/],
    ["", /expected a fraction/],
  ];
  for (const [s, re] of bad) assert.throws(() => parsePattern(s), (e: unknown) => e instanceof UsageError && re.test(e.message), s);
});

test("checkPatternFits: width not divisible by M is a UsageError naming the operator", () => {
  checkPatternFits(parsePattern("2:4"), 64, "layers.0.mlp.down_proj");
  checkPatternFits(parsePattern("0.5"), 63, "x");
  assert.throws(
    () => checkPatternFits(parsePattern("4:8"), 172, "layers.0.mlp.down_proj"),
    (e: unknown) => e instanceof UsageError && /layers\.0\.mlp\.down_proj: 4:8 .* multiple of 8, got 172/.test(e.message),
  );
});
