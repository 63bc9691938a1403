/**
 * @file `bench scale`'s per-layer figures (bench/scale.ts meanPhases, fitTokens) on real prune reports: the CLI
 * prunes generated 1- and 2-layer models of the SmolLM-135M shape (vocabulary cut to 512) as the benchmark runs
 * its prunes (`--residency streamed --json`). The advance is averaged over the layers that ran it (never the
 * last one), is null for a 1-layer run, and the token fit scales it from the run that has it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fitTokens, meanPhases } from "../../bench/scale.ts";
import type { LayerPhases } from "../../src/prune/driver.ts";
import { CLI, SHARED, TINY_TRAIN } from "../helpers/shared.ts";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-bench-scale-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

function ok(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, `wasprune ${args.join(" ")}\n${r.stderr}`);
  return r.stdout;
}

/** The layers of the prune report of a generated `layers`-layer model pruned on `nsamples` × 32 tokens. */
function pruneReport(layers: number, nsamples: number): LayerPhases[] {
  const model = path.join(tmp, `smol-${layers}l`);
  ok(["synth", "smol-135m", "--layers", String(layers), "--vocab", "512", "--out", model, "--tokenizer", path.join(SHARED, "models/stories260K/tok512.model")]);
  const out = path.join(tmp, `out-${layers}l`);
  const s = JSON.parse(ok(["prune", model, "--method", "sparsegpt", "--sparsity", "0.5", "--calib", TINY_TRAIN, "--calib-protocol", "windows",
    "--nsamples", String(nsamples), "--seqlen", "32", "--residency", "streamed", "--threads", "1", "--out", out, "--json"]));
  assert.equal(s.layers.length, layers);
  return s.layers;
}

const PHASES = ["read", "forward", "statistics", "solve", "write"] as const;
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test("bench scale: the advance mean is over the layers that advanced, null for 1 layer; the token fit scales it", () => {
  const two = pruneReport(2, 2);
  const one = pruneReport(1, 1);
  assert.ok(two[0]!.advance > 0, "layer 0 advanced the stream");

  const m2 = meanPhases(two);
  // layer 0 is the only one of two that advances: its advance, not the mean with the last layer's
  close(m2.advance!, two[0]!.advance, "advance of the 2-layer run");
  for (const k of PHASES) close(m2[k], (two[0]![k] + two[1]![k]) / 2, k);
  close(m2.total, PHASES.reduce((s, k) => s + m2[k], 0) + m2.advance!, "total");

  const m1 = meanPhases(one);
  assert.equal(m1.advance, null, "a 1-layer run has no advance");
  close(m1.total, PHASES.reduce((s, k) => s + one[0]![k], 0), "total of the 1-layer run");
  // what the report carries (JSON): the null stays null, nothing averaged in
  assert.deepEqual(JSON.parse(JSON.stringify(m1)), m1);

  // the fit through 32 and 64 tokens: linear phases pass through both runs, the others are the larger run's, and
  // the advance (the 1-layer run has none) is in proportion to the tokens from the 2-layer run
  const t1 = 32, t2 = 64;
  const at = (tokens: number) => fitTokens(m1, m2, t1, t2, tokens);
  assert.deepEqual(at(1000).proportional, ["advance"]);
  for (const k of ["read", "solve", "write"] as const) close(at(1000).perLayer[k], m2[k], k);
  for (const k of ["forward", "statistics"] as const) {
    close(at(t2).perLayer[k], m2[k], `${k} at t2`);
    close(at(t1).perLayer[k], m1[k], `${k} at t1`);
  }
  close(at(t2).perLayer.advance!, m2.advance!, "advance at t2");
  close(at(4 * t2).perLayer.advance!, 4 * m2.advance!, "advance at 4 × t2");
  const f = at(128 * 2048).perLayer;
  close(f.total, PHASES.reduce((s, k) => s + f[k], 0) + f.advance!, "fitted total");
});
