/**
 * `npm start` (`wasprune demo`) as a user runs it, with no model: the embedded stories260K and TinyStories
 * excerpt, `--json`, in a pipe. One run (fewer calibration paragraphs than the default, to keep the suite
 * fast) is checked by both tests.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CLI, GREEDY_200, REPO } from "../helpers/shared.ts";

let cached: { out: string; err: string; code: number | null } | undefined;
function demo() {
  cached ??= (() => {
    const r = spawnSync(process.execPath, [CLI, "demo", "--json", "--nsamples", "16", "--threads", "2"], { encoding: "utf8", timeout: 300_000 });
    return { out: r.stdout, err: r.stderr, code: r.status };
  })();
  assert.equal(cached.code, 0, cached.err);
  return JSON.parse(cached.out);
}

test("demo --json on the embedded stories260K: llama2.c's greedy text, every method at 50% and 2:4, the best model compressed", () => {
  const j = demo();
  assert.equal(cached!.err, "", "quiet in a pipe: no progress bar, nothing on stderr");
  assert.equal(path.relative(REPO, j.model), path.join("models", "stories260K", "stories260K.bin"));
  assert.equal(j.generate.text, GREEDY_200);
  assert.deepEqual([j.eval.protocol, j.eval.paragraphs, j.dense.tokens], ["paragraphs", null, 29256]);
  assert.ok(Math.abs(j.dense.perplexity - 4.2008) < 1e-4, String(j.dense.perplexity));
  const rows = j.prune as { method: string; pattern: string; sparsity: number; meanRelErr: number; perplexity: number; seconds: number }[];
  assert.deepEqual(rows.map((r) => `${r.method} ${r.pattern}`).sort(),
    ["fista 0.5", "fista 2:4", "magnitude 0.5", "magnitude 2:4", "sparsegpt 0.5", "sparsegpt 2:4", "wanda 0.5", "wanda 2:4"]);
  for (const r of rows) {
    assert.ok(Math.abs(r.sparsity - 0.5) < 0.005, `${r.method} ${r.pattern}: sparsity ${r.sparsity}`);
    assert.ok(r.perplexity > j.dense.perplexity && r.meanRelErr > 0 && r.seconds > 0, JSON.stringify(r));
  }
  const best = rows.reduce((a, b) => (b.perplexity < a.perplexity ? b : a));
  assert.deepEqual([j.best.method, j.best.pattern, j.best.perplexity], [best.method, best.pattern, best.perplexity]);
  assert.notEqual(j.best.generate.text, j.generate.text);
  assert.ok(j.best.generate.text.startsWith("Once upon a time"));
  // the compressed model, loaded back from disk, writes what the pruned model writes
  assert.equal(j.compress.generate.text, j.best.generate.text);
  assert.equal(j.compress.sameText, true);
  assert.equal(j.compress.operators.length, 35);
  assert.ok(j.compress.generate.tokensPerSecond > 0 && j.generate.tokensPerSecond > 0);
  assert.ok(!fs.readdirSync(path.dirname(j.model)).some((f) => f !== "stories260K.bin" && f !== "tok512.bin" && f !== "README.md" && f !== "LICENSE"), "nothing written beside the model");
});

test("demo: the compressed best model is smaller than the dense one", () => {
  const j = demo();
  assert.ok(j.compress.fileBytes < j.compress.denseFileBytes, `${j.compress.fileBytes} vs ${j.compress.denseFileBytes} B (${JSON.stringify(j.compress.formats)})`);
});
