/**
 * The CLI smoke tests under Node 24 LTS (scripts/install-node.sh puts it in .cache/node24 during `pretest`):
 * generate, eval, prune and compress on stories260K, each giving what the suite's Node gives (eval: within 1e-6 in
 * the relaxed-SIMD build Node 24 picks, bit for bit in the baseline build). Skipped, with a
 * line saying why, only where the installer could not apply (no registry, WASPRUNE_NODE24=0).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CLI, GREEDY_200, REPO, STORIES_BIN, TINY_TRAIN, TINY_VALID } from "../helpers/shared.ts";

const STAMP = path.join(REPO, ".cache/node24/node-path");
const NODE24 = fs.existsSync(STAMP) ? path.join(REPO, ".cache/node24", fs.readFileSync(STAMP, "utf8").trim()) : undefined;

function run(node: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(node, [CLI, ...args], { encoding: "utf8", timeout: 120_000, env });
  assert.equal(r.status, 0, `${path.basename(node)} ${args.join(" ")}\n${r.stderr}`);
  return r.stdout;
}

test("Node 24 LTS: generate, eval, prune and compress on stories260K match the suite's Node", { skip: NODE24 ? false : "Node 24 not installed here (scripts/install-node.sh skipped: no registry, or WASPRUNE_NODE24=0)" }, () => {
  const node = NODE24!;
  assert.match(spawnSync(node, ["--version"], { encoding: "utf8" }).stdout, /^v24\./);
  assert.equal(run(node, ["generate", STORIES_BIN, "--prompt", "Once upon a time", "--temperature", "0", "--steps", "200"]).trimEnd(), GREEDY_200);

  const evalArgs = (m: string) => ["eval", m, "--text", TINY_VALID, "--paragraphs", "20", "--json", "--threads", "2"];
  // Node 24 runs the relaxed-SIMD build (FMA in the inference kernels): the same perplexity within 1e-6
  // (relative); forced to the baseline build it is the suite's Node bit for bit
  const e24 = JSON.parse(run(node, evalArgs(STORIES_BIN)));
  const e24base = JSON.parse(run(node, evalArgs(STORIES_BIN), { ...process.env, WASPRUNE_KERNELS: "baseline" }));
  const e20 = JSON.parse(run(process.execPath, evalArgs(STORIES_BIN), { ...process.env, WASPRUNE_KERNELS: "baseline" }));
  assert.equal(e24base.meanNll, e20.meanNll);
  assert.ok(Math.abs(e24.meanNll - e20.meanNll) <= 1e-6 * e20.meanNll, `relaxed ${e24.meanNll} vs baseline ${e20.meanNll}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-node24-"));
  try {
    const pruned = path.join(dir, "pruned");
    const p = JSON.parse(run(node, ["prune", STORIES_BIN, "--method", "sparsegpt", "--sparsity", "0.5", "--calib", TINY_TRAIN, "--nsamples", "16",
      "--out", pruned, "--json", "--threads", "2"]));
    assert.ok(Math.abs(p.sparsity - 0.5) < 0.01, String(p.sparsity));
    const c = JSON.parse(run(node, ["compress", pruned, "--out", path.join(dir, "packed"), "--json"]));
    assert.ok(c.fileBytes < c.denseFileBytes, `${c.fileBytes} vs ${c.denseFileBytes}`);
    const ep = JSON.parse(run(node, evalArgs(pruned)));
    const ec = JSON.parse(run(node, evalArgs(path.join(dir, "packed"))));
    assert.ok(ep.perplexity > e24.perplexity);
    assert.ok(Math.abs(ec.meanNll - ep.meanNll) < 1e-9 * ep.meanNll, `compressed ${ec.meanNll} vs pruned ${ep.meanNll}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
