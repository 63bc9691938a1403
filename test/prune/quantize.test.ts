// The quantizers of src/prune/quantize.ts on seeded operators with correlated inputs (a Gram that is far from
// diagonal, where GPTQ's error feedback matters): GPTQ's output error tr((W−Q) H (W−Q)ᵀ) below round-to-nearest's
// for int4 groups (symmetric, asymmetric) and int8 channels; with a diagonal H (nothing to feed forward) exactly
// RTN; a pruned operator's zeros stay +0.0 and its support never grows; the result is on its grid (the codes
// recover it bit for bit); the same bytes for 1 and 2 threads; SparseGPT's joint sweep gives a 2:4 operator on
// the int4 grid with a lower error than pruning then rounding.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createWasm } from "../../src/wasm/runtime.js";
import { openExecutor } from "../../src/workers/index.js";
import type { Executor } from "../../src/exec/executor.js";
import { GramCollector } from "../../src/prune/gram.js";
import { problemFromGram, syntheticOperator } from "../../src/prune/problem.js";
import { METHODS } from "../../src/prune/methods/index.js";
import { gptqQuantize, quantBuffers, quantizedWeight, rtnQuantize } from "../../src/prune/quantize.js";
import { gridOf, parseScheme, type Grid } from "../../src/quant/scheme.js";
import { dequantize } from "../../src/quant/codes.js";
import { countNegativeZeros } from "../../src/sparse/zero.js";

const wasm = createWasm();
const exec = openExecutor(wasm, 1);
const a = wasm.arena;
after(() => exec.close());

async function operator(x: Executor, rows: number, cols: number, seed: number) {
  const { W0, X } = syntheticOperator(x.wasm, { rows, cols, tokens: 4 * cols, seed, correlated: true });
  const g = new GramCollector(x, cols);
  await g.addBatches([{ xp: X, xd: X, T: 4 * cols }]);
  return problemFromGram(x, W0, rows, g.finish());
}

/** tr(D H Dᵀ) in f64 for D = W − W0 */
function outputError(W: Float32Array, W0: Float32Array, H: Float32Array, rows: number, cols: number): number {
  let s = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) d[j] = W[r * cols + j]! - W0[r * cols + j]!;
    for (let i = 0; i < cols; i++) {
      let t = 0;
      for (let j = 0; j < cols; j++) t += H[i * cols + j]! * d[j]!;
      s += d[i]! * t;
    }
  }
  return s;
}

async function quantized(x: Executor, method: "rtn" | "gptq", H: number, W0: number, rows: number, cols: number, grid: Grid) {
  const w = x.wasm.arena;
  const W = w.put(w.f32(W0, rows * cols).slice());
  const q = quantBuffers(x.wasm, rows, cols, grid);
  if (method === "rtn") rtnQuantize(x.wasm, W, rows, cols, q);
  else await gptqQuantize(x, H, W, rows, cols, q);
  return { W: w.f32(W, rows * cols).slice(), qw: quantizedWeight(x.wasm, W, rows, cols, grid, q, "op") };
}

test("GPTQ beats round-to-nearest on correlated inputs; both land on their grids", async () => {
  const m = a.mark();
  const [rows, cols] = [24, 64];
  const p = await operator(exec, rows, cols, 3);
  const H = a.f32(p.H, cols * cols).slice();
  const W0 = a.f32(p.W0, rows * cols).slice();
  for (const [scheme, asym] of [["w4g32", false], ["w4g32", true], ["w4g64", false], ["w8", false]] as const) {
    const grid = gridOf(parseScheme(scheme, asym), cols);
    const rtn = await quantized(exec, "rtn", p.H, p.W0, rows, cols, grid);
    const gptq = await quantized(exec, "gptq", p.H, p.W0, rows, cols, grid);
    const eR = outputError(rtn.W, W0, H, rows, cols);
    const eG = outputError(gptq.W, W0, H, rows, cols);
    assert.ok(eG < 0.9 * eR, `${scheme}${asym ? " asym" : ""}: GPTQ ${eG} vs RTN ${eR}`);
    assert.deepEqual(dequantize(gptq.qw), gptq.W, "the codes give back the weights bit for bit");
    assert.ok(eR > 0);
  }
  a.release(m);
});

test("act-order: static grids in the stored column order, still on the grid and better than round-to-nearest", async () => {
  const m = a.mark();
  const [rows, cols] = [24, 64];
  const p = await operator(exec, rows, cols, 21);
  const H = a.f32(p.H, cols * cols).slice();
  const W0 = a.f32(p.W0, rows * cols).slice();
  for (const [scheme, asym] of [["w4g32", false], ["w4g32", true], ["w8", false]] as const) {
    const grid = gridOf(parseScheme(scheme, asym), cols);
    const rtn = await quantized(exec, "rtn", p.H, p.W0, rows, cols, grid);
    const w = a.put(W0.slice());
    const q = quantBuffers(wasm, rows, cols, grid);
    await gptqQuantize(exec, p.H, w, rows, cols, q, { actOrder: true });
    const act = a.f32(w, rows * cols).slice();
    // static grids: fitted before the sweep, so they are round-to-nearest's grids exactly
    assert.deepEqual(a.f32(q.qs, rows * grid.ng).slice(), rtn.qw.scale, `${scheme}: scales`);
    assert.deepEqual(dequantize(quantizedWeight(wasm, w, rows, cols, grid, q, "op")), act);
    assert.ok(outputError(act, W0, H, rows, cols) < 0.9 * outputError(rtn.W, W0, H, rows, cols), scheme);
  }
  a.release(m);
});

test("with a diagonal Gram GPTQ is round-to-nearest, bit for bit", async () => {
  const m = a.mark();
  const [rows, cols] = [8, 64];
  const p = await operator(exec, rows, cols, 5);
  const Hd = new Float32Array(cols * cols);
  for (let j = 0; j < cols; j++) Hd[j * cols + j] = 0.5 + (j % 7);
  const H = a.put(Hd);
  for (const scheme of ["w4g32", "w8"]) {
    const grid = gridOf(parseScheme(scheme), cols);
    const rtn = await quantized(exec, "rtn", H, p.W0, rows, cols, grid);
    const gptq = await quantized(exec, "gptq", H, p.W0, rows, cols, grid);
    assert.deepEqual(gptq.W, rtn.W, scheme);
  }
  a.release(m);
});

test("on a pruned operator the zeros stay +0.0 and the support never grows; 1 and 2 threads agree", async () => {
  const exec2 = openExecutor(wasm, 2);
  try {
    const m = a.mark();
    const [rows, cols] = [32, 64];
    const p = await operator(exec, rows, cols, 9);
    const pruned = await METHODS.wanda.prune(exec, { kind: "light", rows, cols, W0: p.W0, nTokens: 1, diag: p.diag, corrected: false }, { kind: "nm", n: 2, m: 4 });
    const P = a.f32(pruned.W, rows * cols).slice();
    const grid = gridOf(parseScheme("w4g32", true), cols);
    const one = await quantized(exec, "gptq", p.H, pruned.W, rows, cols, grid);
    const two = await quantized(exec2, "gptq", p.H, pruned.W, rows, cols, grid);
    assert.deepEqual(new Uint32Array(two.W.buffer), new Uint32Array(one.W.buffer));
    assert.equal(countNegativeZeros(one.W), 0);
    for (let i = 0; i < P.length; i++) if (P[i] === 0) assert.ok(Object.is(one.W[i], 0), `weight ${i} left the support`);
    const rtn = await quantized(exec, "rtn", p.H, pruned.W, rows, cols, grid);
    const H = a.f32(p.H, cols * cols).slice();
    const W0 = a.f32(p.W0, rows * cols).slice();
    assert.ok(outputError(one.W, W0, H, rows, cols) < outputError(rtn.W, W0, H, rows, cols));
    a.release(m);
  } finally {
    await exec2.close();
  }
});

test("SparseGPT's joint sweep: 2:4 on the int4 grid, better than pruning then rounding", async () => {
  const m = a.mark();
  const [rows, cols] = [16, 64];
  const p = await operator(exec, rows, cols, 13);
  const grid = gridOf(parseScheme("w4g32"), cols);
  const q = quantBuffers(wasm, rows, cols, grid);
  const joint = await METHODS.sparsegpt.prune(exec, p, { kind: "nm", n: 2, m: 4 }, { sparsegpt: { quant: q } });
  const J = a.f32(joint.W, rows * cols).slice();
  const qw = quantizedWeight(wasm, joint.W, rows, cols, grid, q, "op");
  assert.deepEqual(dequantize(qw), J);
  for (let r = 0; r < rows; r++) for (let g = 0; g < cols; g += 4) assert.ok([0, 1, 2, 3].filter((i) => J[r * cols + g + i] !== 0).length <= 2);
  const plain = await METHODS.sparsegpt.prune(exec, p, { kind: "nm", n: 2, m: 4 });
  const after = await quantized(exec, "rtn", p.H, plain.W, rows, cols, grid);
  const H = a.f32(p.H, cols * cols).slice();
  const W0 = a.f32(p.W0, rows * cols).slice();
  assert.ok(outputError(J, W0, H, rows, cols) < outputError(after.W, W0, H, rows, cols));
  a.release(m);
});
