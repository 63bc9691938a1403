/**
 * @file FISTA on WebGPU (src/gpu/fista.ts) against the WASM FistaSolver: the runs on a seeded synthetic
 * operator (solve, refit with a mask, IHT, the λ bisection), then a FISTA prune of the real model
 * (stories260K-hf, TinyStories calibration): masks equal to the WASM prune's except on ties (counted and
 * reported), perplexity within 0.5 %. Without an adapter each test says so and skips (and fails where
 * scripts/install-lavapipe.sh ran).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { createWasm } from "../../src/wasm/runtime.js";
import { GramCollector } from "../../src/prune/gram.js";
import { problemFromGram, syntheticOperator } from "../../src/prune/problem.js";
import { FistaSolver } from "../../src/prune/methods/fista.js";
import { parsePattern, keptPerRow } from "../../src/prune/pattern.js";
import { probeGpu } from "../../src/gpu/device.js";
import { GpuFistaSolver, gpuFistaSolvers } from "../../src/gpu/fista.js";
import { loadModel } from "../../src/model/load.js";
import { LINEAR_OPS } from "../../src/model/types.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { paragraphSequences } from "../../src/eval/text.js";
import { calibrationSet } from "../../src/prune/calibration.js";
import { pruneModel } from "../../src/prune/driver.js";
import { STORIES_HF, TINY_TRAIN, TINY_VALID } from "../helpers/shared.js";
import { gpuOrSkip, relErr } from "./helpers.js";
import { openExecutor } from "../../src/workers/index.js";
import { denseLinear } from "../../src/model/linear.js";
import { MemorySink } from "../../src/prune/output.js";
import { residentStore } from "../../src/model/residency.js";

after(async () => {
  const p = await probeGpu();
  if (p.ok) p.gpu.destroy();
});

test("GpuFistaSolver runs match FistaSolver: solve, masked refit, IHT, λ bisection", async (t) => {
  const gpu = await gpuOrSkip(t);
  if (!gpu) return;
  const wasm = createWasm();
  const a = wasm.arena;
  const rows = 96, cols = 160, n = rows * cols;
  const { W0, X } = syntheticOperator(wasm, { rows, cols, tokens: 400, seed: 11, correlated: true });
  const exec = openExecutor(wasm, 1);
  const gc = new GramCollector(exec, cols);
  await gc.addBatches([{ xp: X, xd: X, T: 400 }]);
  const problem = await problemFromGram(exec, W0, rows, gc.finish());
  const cpu = new FistaSolver(exec, problem);
  const dev = new GpuFistaSolver(exec, problem, gpu);
  cpu.setStep(60, 1234);
  dev.setStep(60, 1234);
  const lam = a.alloc(rows);
  const mask = a.alloc(n);
  const w1 = a.alloc(n), w2 = a.alloc(n);
  const get = (p: number) => Float32Array.from(a.f32(p, n));
  const errs: Record<string, number> = {};

  a.f32(lam, rows).fill(0.05);
  await cpu.solve(W0, w1, lam, 0, 100);
  await dev.solve(W0, w2, lam, 0, 100);
  errs.solve = relErr(get(w2), get(w1));

  const m = a.f32(mask, n);
  for (let i = 0; i < n; i++) m[i] = i % 3 === 0 ? 0 : 1;
  a.f32(lam, rows).fill(0);
  await cpu.solve(W0, w1, lam, mask, 150);
  await dev.solve(W0, w2, lam, mask, 150);
  errs.refit = relErr(get(w2), get(w1));

  for (const pat of ["0.5", "2:4"]) {
    const pattern = parsePattern(pat);
    const m1 = a.alloc(n), m2 = a.alloc(n);
    await cpu.iht(W0, w1, lam, m1, pattern, 40);
    await dev.iht(W0, w2, lam, m2, pattern, 40);
    const diff = a.f32(m1, n).reduce((s, v, i) => s + (v !== a.f32(m2, n)[i] ? 1 : 0), 0);
    t.diagnostic(`IHT ${pat}: ${diff} of ${n} mask entries differ`);
    assert.ok(diff <= n * 0.002, `IHT ${pat} masks differ in ${diff} entries`);
    errs[`iht ${pat}`] = relErr(get(w2), get(w1));
  }

  const keep = keptPerRow(parsePattern("0.5"), cols);
  a.f32(w1, n).set(a.f32(W0, n));
  a.f32(w2, n).set(a.f32(W0, n));
  const z1 = await cpu.bisect(w1, lam, keep, 10, 30, 60);
  const lam1 = Float32Array.from(a.f32(lam, rows));
  const z2 = await dev.bisect(w2, lam, keep, 10, 30, 60);
  const lamDiff = lam1.reduce((s, v, i) => s + (v !== a.f32(lam, rows)[i] ? 1 : 0), 0);
  const nnzDiff = z1.reduce((s, v, i) => s + Math.abs(v - z2[i]), 0);
  t.diagnostic(`bisection: λ differs in ${lamDiff} of ${rows} rows, |Δnnz| summed ${nnzDiff}`);
  assert.ok(lamDiff <= rows * 0.05, `λ differs in ${lamDiff} rows`);
  errs.bisect = relErr(get(w2), get(w1));
  dev.dispose();
  t.diagnostic(`relative error GPU vs WASM: ${JSON.stringify(errs)}`);
  console.log(`# FISTA runs, relative error GPU vs WASM: ${JSON.stringify(errs)}`);
  for (const [k, e] of Object.entries(errs)) assert.ok(e <= 1e-3, `${k}: ${e}`);
});

test("FISTA prune of stories260K on webgpu: WASM masks except ties, perplexity within 0.5 %", async (t) => {
  const gpu = await gpuOrSkip(t);
  if (!gpu) return;
  const nsamples = 8;
  // fewer iterations than the defaults (same on both sides): lavapipe runs the tiny per-iteration dispatches
  // ~100x slower than WASM, and the suite has a 2-minute budget
  const fista = { ihtIters: 20, refitIters: 40 };
  const run = async (device: "wasm" | "webgpu") => {
    const model = await loadModel(STORIES_HF);
    const tok = model.tokenizer!;
    const calib = calibrationSet(tok, fs.readFileSync(TINY_TRAIN, "utf8"), TINY_TRAIN, nsamples, 512);
    const exec = openExecutor(model.wasm, 1);
    const t0 = performance.now();
    await pruneModel(residentStore(model), calib, {
      method: "fista", pattern: parsePattern("0.5"), schedule: "sequential", errorCorrection: true,
      methodOptions: device === "webgpu" ? { fista, fistaSolver: gpuFistaSolvers(gpu) } : { fista },
    }, exec, new MemorySink(model));
    const seconds = (performance.now() - t0) / 1000;
    const ppl = (await perplexity(model, paragraphSequences(tok, fs.readFileSync(TINY_VALID, "utf8"), 100, 512), exec)).perplexity;
    const weights = model.weights.layers.map((lw) => LINEAR_OPS.map((op) => denseLinear(lw[op], op).data.slice()));
    return { ppl, weights, seconds };
  };
  const w = await run("wasm");
  const g = await run("webgpu");
  let differ = 0, total = 0, maxRel = 0;
  for (let l = 0; l < w.weights.length; l++) {
    for (let i = 0; i < LINEAR_OPS.length; i++) {
      const A = w.weights[l][i], B = g.weights[l][i];
      total += A.length;
      for (let j = 0; j < A.length; j++) if ((A[j] === 0) !== (B[j] === 0)) differ++;
      maxRel = Math.max(maxRel, relErr(B, A));
    }
  }
  const dppl = Math.abs(g.ppl - w.ppl) / w.ppl;
  const msg = `stories260K fista 0.5, ${nsamples} calib paragraphs: mask entries differing ${differ} of ${total}; ` +
    `max weight rel. error ${maxRel.toExponential(2)}; perplexity (100 valid paragraphs) wasm ${w.ppl.toFixed(4)}, ` +
    `webgpu ${g.ppl.toFixed(4)} (${(100 * dppl).toFixed(3)} %); prune seconds wasm ${w.seconds.toFixed(1)}, webgpu ${g.seconds.toFixed(1)}`;
  t.diagnostic(msg);
  console.log(`# ${msg}`);
  assert.ok(dppl <= 0.005, msg);
  // masks: identical but for near-ties; allow at most 0.1 % of the entries
  assert.ok(differ <= total * 0.001, msg);
});
