// The methods against plain references on small seeded problems.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createWasm } from "../../src/wasm/runtime.js";
import { openExecutor } from "../../src/workers/index.js";
import type { Executor } from "../../src/exec/executor.js";
import { GramCollector } from "../../src/prune/gram.js";
import { problemFromGram, syntheticOperator, objective, rowObjectives, type OperatorProblem } from "../../src/prune/problem.js";
import { METHODS } from "../../src/prune/methods/index.js";
import { FistaSolver } from "../../src/prune/methods/fista.js";
import { parsePattern, keptPerRow, type Pattern } from "../../src/prune/pattern.js";

const wasm = createWasm();
const exec = openExecutor(wasm, 1);
const a = wasm.arena;
/** a.scoped for async bodies (the methods are async: their products may run on worker threads). */
async function scopedAsync<T>(fn: () => Promise<T>): Promise<T> {
  const mark = a.mark();
  try {
    return await fn();
  } finally {
    a.release(mark);
  }
}

async function makeProblem(x: Executor, rows: number, cols: number, tokens: number, seed: number, correlated = false) {
  const { W0, X } = syntheticOperator(x.wasm, { rows, cols, tokens, seed, correlated });
  const g = new GramCollector(x, cols);
  await g.addBatches([{ xp: X, xd: X, T: tokens }]);
  const problem = await problemFromGram(x, W0, rows, g.finish());
  return { problem, X };
}

const view = (p: number, n: number) => Float64Array.from(a.f32(p, n));

/** keep-mask by |score| desc, index asc, within `groups` of `size`, keeping `k` per group. */
function refMask(score: ArrayLike<number>, size: number, k: number): number[] {
  const m = new Array<number>(score.length).fill(0);
  for (let g0 = 0; g0 < score.length; g0 += size) {
    const idx = Array.from({ length: size }, (_, i) => g0 + i).sort((i, j) => Math.abs(score[j]) - Math.abs(score[i]) || i - j);
    for (const i of idx.slice(0, k)) m[i] = 1;
  }
  return m;
}

function maskOf(W: number, n: number): number[] {
  return Array.from(a.f32(W, n), (v) => (v !== 0 ? 1 : 0));
}

test("magnitude: exactly the reference mask (whole operator / N:M)", async () => {
  await scopedAsync(async () => {
    const { problem } = await makeProblem(exec, 12, 16, 64, 1);
    const n = 12 * 16;
    const w0 = a.f32(problem.W0, n);
    for (const [pat, size, k] of [["0.5", n, n / 2], ["0.3", n, n - Math.round(0.3 * n)], ["2:4", 4, 2], ["4:8", 8, 4]] as const) {
      const { W, stats } = await METHODS.magnitude.prune(exec, problem, parsePattern(pat));
      assert.deepEqual(maskOf(W, n), refMask(w0, size, k), pat);
      assert.ok(Math.abs(stats.sparsity - (1 - k / size)) < 1e-12, `${pat}: sparsity ${stats.sparsity}`);
      const w = a.f32(W, n);
      for (let i = 0; i < n; i++) if (w[i] !== 0) assert.equal(w[i], w0[i]);
    }
  });
});

test("wanda: exactly the reference mask |W|·√H_jj per row / per group", async () => {
  await scopedAsync(async () => {
    const rows = 10, cols = 24, n = rows * cols;
    const { problem } = await makeProblem(exec, rows, cols, 50, 2, true);
    const w0 = a.f32(problem.W0, n);
    const h = a.f32(problem.H, cols * cols);
    const s = Float32Array.from(w0, (v, i) => Math.abs(v) * Math.fround(Math.sqrt(h[(i % cols) * (cols + 1)])));
    for (const [pat, size, k] of [["0.5", cols, 12], ["0.7", cols, cols - Math.round(0.7 * cols)], ["2:4", 4, 2], ["1:4", 4, 1]] as const) {
      const { W } = await METHODS.wanda.prune(exec, problem, parsePattern(pat));
      assert.deepEqual(maskOf(W, n), refMask(s, size, k), pat);
    }
  });
});

/**
 * Direct, unoptimised OBS in float64 (SparseGPT eq. 3 without the Cholesky or lazy batching): columns in
 * order, the inverse Hessian of the remaining columns updated by explicit elimination; the mask of a
 * block (or N:M group) chosen when its first column comes, by w²/Hc_jj with Hc the current inverse.
 */
function directObs(W0: Float64Array, H: Float64Array, rows: number, cols: number, pattern: Pattern, block: number): Float64Array {
  const W = W0.slice();
  let mean = 0;
  for (let j = 0; j < cols; j++) mean += H[j * cols + j];
  const damp = 0.01 * (mean / cols);
  const A = H.slice();
  for (let j = 0; j < cols; j++) A[j * cols + j] += damp;
  const Hc = invert(A, cols);
  // the diagonal each column will see when processed: eliminate on Hc alone first
  const dAt = new Float64Array(cols);
  {
    const T = Hc.slice();
    for (let j = 0; j < cols; j++) {
      dAt[j] = T[j * cols + j];
      eliminate(T, cols, j);
    }
  }
  const pruned = new Uint8Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    if (pattern.kind === "unstructured" && j % block === 0) {
      const cnt = Math.min(block, cols - j);
      const sc: number[] = [];
      for (let r = 0; r < rows; r++) for (let c = 0; c < cnt; c++) sc.push(Math.fround(Math.fround(W[r * cols + j + c] ** 2) / Math.fround(dAt[j + c])));
      const total = rows * cnt;
      const keep = refMask(sc, total, total - Math.round(pattern.sparsity * total));
      for (let r = 0; r < rows; r++) for (let c = 0; c < cnt; c++) pruned[r * cols + j + c] = keep[r * cnt + c] ? 0 : 1;
    }
    if (pattern.kind === "nm" && j % pattern.m === 0) {
      for (let r = 0; r < rows; r++) {
        const sc = Array.from({ length: pattern.m }, (_, c) => W[r * cols + j + c] ** 2 / dAt[j + c]);
        const keep = refMask(sc, pattern.m, pattern.n);
        for (let c = 0; c < pattern.m; c++) pruned[r * cols + j + c] = keep[c] ? 0 : 1;
      }
    }
    const d = Hc[j * cols + j];
    for (let r = 0; r < rows; r++) {
      if (!pruned[r * cols + j]) continue;
      const e = W[r * cols + j] / d;
      for (let c = j; c < cols; c++) W[r * cols + c] -= e * Hc[j * cols + c];
      W[r * cols + j] = 0;
    }
    eliminate(Hc, cols, j);
  }
  return W;
}

/** Hc ← Hc − Hc[:,j]Hc[j,:]/Hc[j,j] (removes column j from the remaining problem). */
function eliminate(Hc: Float64Array, n: number, j: number): void {
  const d = Hc[j * n + j];
  const rowj = Hc.slice(j * n, (j + 1) * n);
  for (let i = 0; i < n; i++) {
    const f = Hc[i * n + j] / d;
    if (f !== 0) for (let c = 0; c < n; c++) Hc[i * n + c] -= f * rowj[c];
  }
}

function invert(A: Float64Array, n: number): Float64Array {
  const M = A.slice();
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; i++) I[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r * n + c]) > Math.abs(M[p * n + c])) p = r;
    for (let k = 0; k < n; k++) {
      [M[c * n + k], M[p * n + k]] = [M[p * n + k], M[c * n + k]];
      [I[c * n + k], I[p * n + k]] = [I[p * n + k], I[c * n + k]];
    }
    const d = M[c * n + c];
    for (let k = 0; k < n; k++) { M[c * n + k] /= d; I[c * n + k] /= d; }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r * n + c];
      for (let k = 0; k < n; k++) { M[r * n + k] -= f * M[c * n + k]; I[r * n + k] -= f * I[c * n + k]; }
    }
  }
  return I;
}

test("sparsegpt equals a direct OBS implementation (blocks of 8 and lazy updates exercised)", async () => {
  await scopedAsync(async () => {
    const rows = 6, cols = 24, n = rows * cols;
    const { problem } = await makeProblem(exec, rows, cols, 200, 3, true);
    for (const pat of ["0.5", "2:4"]) {
      const pattern = parsePattern(pat);
      const { W } = await METHODS.sparsegpt.prune(exec, problem, pattern, { sparsegpt: { blockSize: 8 } });
      const ref = directObs(view(problem.W0, n), view(problem.H, cols * cols), rows, cols, pattern, 8);
      const got = a.f32(W, n);
      const scale = Math.max(...Array.from(ref, Math.abs));
      assert.deepEqual(maskOf(W, n), Array.from(ref, (v) => (v !== 0 ? 1 : 0)), `${pat} mask`);
      for (let i = 0; i < n; i++) assert.ok(Math.abs(got[i] - ref[i]) <= 2e-4 * scale, `${pat} at ${i}: ${got[i]} vs ${ref[i]}`);
    }
  });
});

test("FISTA at a fixed λ: lasso optimality (KKT) and a decreasing objective", async () => {
  await scopedAsync(async () => {
    const rows = 6, cols = 20, n = rows * cols;
    const { problem } = await makeProblem(exec, rows, cols, 400, 4);
    const solver = new FistaSolver(exec, problem);
    solver.setStep(100, 1);
    const lamVal = 0.05;
    const lam = a.put(new Float32Array(rows).fill(lamVal));
    const F = async (W: number) => (await objective(exec, problem, W)) + lamVal * a.f32(W, n).reduce((s, v) => s + Math.abs(v), 0);
    const W = a.alloc(n);
    a.f32(W, n).set(a.f32(problem.W0, n));
    const trace = [await F(W)];
    for (const iters of [5, 20, 100, 600]) {
      await solver.solve(W, W, lam, 0, iters);
      trace.push(await F(W));
    }
    for (let i = 1; i < trace.length; i++) assert.ok(trace[i] <= trace[i - 1] + 1e-7, `objective rose: ${trace}`);
    // KKT on ∇ = 2(WH − B), in float64
    const w = view(W, n), h = view(problem.H, cols * cols), b = view(problem.B, n);
    const tol = 2e-3;
    let zeros = 0;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        let g = 0;
        for (let c = 0; c < cols; c++) g += w[r * cols + c] * h[c * cols + j];
        g = 2 * (g - b[r * cols + j]);
        const x = w[r * cols + j];
        if (x !== 0) assert.ok(Math.abs(g + lamVal * Math.sign(x)) <= tol, `(${r},${j}) w=${x} grad=${g}`);
        else { zeros++; assert.ok(Math.abs(g) <= lamVal + tol, `(${r},${j}) zero with |grad|=${g}`); }
      }
    }
    assert.ok(zeros > 0 && zeros < n, `λ should give a sparse, nonzero solution (zeros ${zeros}/${n})`);
  });
});

test("λ bisection reaches the per-row target; the final pattern is exact (0.5, 2:4, 4:8)", async () => {
  await scopedAsync(async () => {
    const rows = 16, cols = 32, n = rows * cols;
    const { problem } = await makeProblem(exec, rows, cols, 300, 5, true);
    const solver = new FistaSolver(exec, problem);
    solver.setStep(60, 1);
    const keep = keptPerRow(parsePattern("0.5"), cols);
    const W = a.alloc(n);
    a.f32(W, n).set(a.f32(problem.W0, n));
    const nnz = await solver.bisect(W, a.alloc(rows), keep, 20, 300, 300);
    for (let r = 0; r < rows; r++) assert.ok(Math.abs(nnz[r] - keep) <= 3, `row ${r}: ${nnz[r]} nonzeros, target ${keep}`);
    for (const pat of ["0.5", "2:4", "4:8"]) {
      const pattern = parsePattern(pat);
      const { W: Wf, stats } = await METHODS.fista.prune(exec, problem, pattern);
      const w = a.f32(Wf, n);
      assert.equal(stats.sparsity, 0.5, pat);
      if (pattern.kind === "nm") {
        for (let g0 = 0; g0 < n; g0 += pattern.m) {
          let c = 0;
          for (let i = 0; i < pattern.m; i++) if (w[g0 + i] !== 0) c++;
          assert.equal(c, pattern.n, `${pat}: group at ${g0} has ${c} nonzeros`);
        }
      }
    }
  });
});

test("error correction: cross term, target energy and objective equal direct computations", async () => {
  await scopedAsync(async () => {
    const rows = 5, cols = 12, T = 90;
    const { W0, X: Xd } = syntheticOperator(wasm, { rows, cols, tokens: T, seed: 6 });
    const { X: Xp } = syntheticOperator(wasm, { rows: 1, cols, tokens: T, seed: 7 });
    const xp0 = a.f32(Xp, T * cols), xd0 = a.f32(Xd, T * cols);
    for (let i = 0; i < T * cols; i++) xp0[i] = 0.8 * xd0[i] + 0.3 * xp0[i]; // pruned inputs ≈ dense ones
    const g = new GramCollector(exec, cols, { cross: true });
    await g.addBatches([{ xp: Xp, xd: Xd, T: 40 }]); // two batches
    await g.addBatches([{ xp: Xp + 4 * 40 * cols, xd: Xd + 4 * 40 * cols, T: T - 40 }]);
    const problem = await problemFromGram(exec, W0, rows, g.finish());
    const w0 = view(W0, rows * cols), xp = view(Xp, T * cols), xd = view(Xd, T * cols);
    const out = (W: Float64Array, X: Float64Array) => {
      const Y = new Float64Array(T * rows);
      for (let t = 0; t < T; t++) for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += W[r * cols + j] * X[t * cols + j];
        Y[t * rows + r] = s;
      }
      return Y;
    };
    const Yd = out(w0, xd);
    const E = Yd.reduce((s, v) => s + v * v, 0) / T;
    assert.ok(Math.abs(problem.targetEnergy - E) <= 1e-5 * E, `E ${problem.targetEnergy} vs ${E}`);
    const b = view(problem.B, rows * cols);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let t = 0; t < T; t++) for (let k = 0; k < cols; k++) s += w0[r * cols + k] * xd[t * cols + k] * xp[t * cols + j];
      s /= T;
      assert.ok(Math.abs(b[r * cols + j] - s) <= 1e-4 * (1 + Math.abs(s)), `B(${r},${j}) ${b[r * cols + j]} vs ${s}`);
    }
    assert.equal(problem.corrected, true);
    for (const m of ["magnitude", "sparsegpt", "fista"] as const) {
      const { W, stats } = await METHODS[m].prune(exec, problem, parsePattern("0.5"));
      const Yp = out(view(W, rows * cols), xp);
      const f = Yp.reduce((s, v, i) => s + (v - Yd[i]) ** 2, 0) / T;
      assert.ok(Math.abs(stats.relErr! - f / E) <= 1e-4, `${m}: relErr ${stats.relErr} vs direct ${f / E}`);
    }
  });
});

test("correlated 64×128 problem: FISTA ≤ its warm starts (safeguard), SparseGPT/Wanda ≤ magnitude", async () => {
  await scopedAsync(async () => {
    const { problem } = await makeProblem(exec, 64, 128, 1024, 7, true);
    for (const pat of ["0.5", "2:4"]) {
      const rel: Record<string, number> = {};
      for (const m of ["magnitude", "wanda", "sparsegpt", "fista"] as const) {
        rel[m] = await scopedAsync(async () => (await METHODS[m].prune(exec, problem, parsePattern(pat))).stats.relErr!);
      }
      assert.ok(rel.fista <= rel.sparsegpt && rel.fista <= rel.wanda, `${pat}: ${JSON.stringify(rel)}`);
      assert.ok(rel.sparsegpt <= rel.magnitude && rel.wanda <= rel.magnitude, `${pat}: ${JSON.stringify(rel)}`);
    }
  });
});

test("rowObjectives sum to the objective; dead inputs are handled by every method", async () => {
  await scopedAsync(async () => {
    const rows = 8, cols = 16, T = 64;
    const { W0, X } = syntheticOperator(wasm, { rows, cols, tokens: T, seed: 9 });
    const x = a.f32(X, T * cols);
    for (let t = 0; t < T; t++) x[t * cols + 3] = 0; // a dead input
    const g = new GramCollector(exec, cols);
    await g.addBatches([{ xp: X, xd: X, T }]);
    const problem: OperatorProblem = await problemFromGram(exec, W0, rows, g.finish());
    for (const m of ["magnitude", "wanda", "sparsegpt", "fista"] as const) {
      const { W, stats } = await METHODS[m].prune(exec, problem, parsePattern("2:4"));
      const f = (await rowObjectives(exec, problem, W)).reduce((s, v) => s + v, 0);
      assert.ok(Math.abs(f / problem.targetEnergy - stats.relErr!) < 1e-9, m);
      assert.ok(Number.isFinite(stats.relErr) && stats.relErr! < 1, `${m}: ${stats.relErr}`);
    }
  });
});

test("rowsIndependent: where a method claims it, an operator solved in row blocks is the whole solve, bit for bit", async () => {
  const { rowBlock } = await import("../../src/prune/solve.js");
  const rows = 40, cols = 64;
  // row blocks on multiples of 4, covering the rows in order (an empty block when there are more blocks than tiles)
  assert.deepEqual([0, 1, 2].map((b) => rowBlock(rows, b, 3)), [[0, 16], [16, 32], [32, 40]]);
  assert.deepEqual([0, 1, 2].map((b) => rowBlock(6, b, 3)), [[0, 4], [4, 6], [6, 6]]);
  const claims = Object.values(METHODS).flatMap((m) => ["0.5", "2:4"].map((p) => [m, parsePattern(p)] as const)).filter(([m, p]) => m.rowsIndependent(p));
  assert.deepEqual(claims.map(([m, p]) => `${m.name} ${p.kind}`), ["magnitude nm", "wanda unstructured", "wanda nm", "sparsegpt nm"]);
  await scopedAsync(async () => {
    const { W0, X } = syntheticOperator(wasm, { rows, cols, tokens: 256, seed: 7, correlated: true });
    const g = new GramCollector(exec, cols);
    await g.addBatches([{ xp: X, xd: X, T: 256 }]);
    const gram = g.finish();
    for (const [m, pattern] of claims) {
      const prepared = m.prepare ? await m.prepare(exec, gram.H, cols, false) : undefined;
      const whole = await METHODS[m.name].prune(exec, { ...(await problemFromGram(exec, W0, rows, gram)), prepared }, pattern);
      const w = Float32Array.from(a.f32(whole.W, rows * cols));
      let nonzero = 0;
      for (const v of w) if (v !== 0) nonzero++;
      assert.equal(nonzero, (rows * cols) / 2, `${m.name}: half the weights kept`);
      for (const b of [0, 1, 2]) {
        const [r0, r1] = rowBlock(rows, b, 3);
        const part = await m.prune(exec, { ...(await problemFromGram(exec, W0 + 4 * r0 * cols, r1 - r0, gram)), prepared }, pattern);
        const got = a.f32(part.W, (r1 - r0) * cols);
        for (let i = 0; i < got.length; i++) {
          if (!Object.is(got[i], w[r0 * cols + i])) assert.fail(`${m.name} ${pattern.kind}: rows ${r0}..${r1}, weight ${i}: ${got[i]} vs ${w[r0 * cols + i]} solved whole`);
        }
      }
    }
  });
});
