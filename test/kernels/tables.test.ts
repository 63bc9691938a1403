/** @file assembly/tables.ts is what scripts/gen-kernel-tables.mjs generates (the tables are committed as static data). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

test("the kernels' static tables match their generator", () => {
  const r = spawnSync(process.execPath, ["scripts/gen-kernel-tables.mjs", "--check"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
});
