// `bench page` through the CLI: the page in Chromium against the Node library on the same models, every round's
// text compared (the benchmark throws on a difference), tok/s on both sides, and the screenshot written.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromiumMissing } from "../helpers/browser.ts";
import { okCli } from "../helpers/cli.ts";

test("bench page: the page and Node on the dense and the CSR model, tok/s per round, a screenshot", { skip: chromiumMissing(), timeout: 300_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-bench-page-test-"));
  try {
    const shot = path.join(tmp, "page.png");
    const r = JSON.parse(await okCli(["bench", "page", "--rounds", "2", "--steps", "40", "--screenshot", shot, "--json"]));
    assert.equal(r.rounds, 2);
    assert.deepEqual(r.rows.map((x: { model: string }) => x.model), ["stories260K dense", "stories260K wanda 50%, compressed (CSR)"]);
    for (const row of r.rows) {
      assert.equal(row.node.length, 2);
      assert.equal(row.page.length, 2);
      for (const v of [...row.node, ...row.page]) assert.ok(v > 0 && Number.isFinite(v), `tok/s ${v}`);
      assert.ok(row.pageOverNode > 0);
      // the page ran the relaxed build, so every round also ran it on the baseline build, side by side
      assert.equal(row.pageBaseline.length, 2);
      for (const v of row.pageBaseline) assert.ok(v > 0 && Number.isFinite(v), `baseline tok/s ${v}`);
      assert.ok(row.relaxedOverBaseline > 0);
    }
    assert.ok(fs.readFileSync(shot).subarray(1, 4).toString() === "PNG", "the screenshot is a PNG");
    assert.equal(r.device, "auto");
    // Chromium has relaxed SIMD: auto gives the page the relaxed build; Node 20 runs the baseline
    assert.deepEqual(r.kernels, { asked: "auto", page: "relaxed", node: process.versions.node.startsWith("20.") ? "baseline" : "relaxed" });
    // both sides on the packed layouts: the page with device=wasm, Node with weights "stored" (texts compared)
    const w = JSON.parse(await okCli(["bench", "page", "--rounds", "1", "--steps", "20", "--device", "wasm", "--kernels", "baseline", "--json"]));
    assert.equal(w.device, "wasm");
    assert.equal(w.kernels.page, "baseline");
    // nothing to compare a baseline page with: no second page run
    assert.ok(w.rows.every((x: { pageBaseline?: number[] }) => x.pageBaseline === undefined));
    assert.ok(w.rows.every((x: { page: number[] }) => x.page.length === 1 && x.page[0]! > 0));
    assert.match(w.notes[0], /packed for the kernels/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
