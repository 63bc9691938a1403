// SparseGPT's blocked linear algebra (src/prune/linalg.ts on assembly/f32-cholesky.ts + f32_gemm_strided): the
// upper Cholesky factor of (H + δI)⁻¹ against a float64 reference on sizes where every block and chunk edge
// occurs, the same bytes for one and two threads, dead inputs, and the refusal of an indefinite matrix.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createWasm } from "../../src/wasm/runtime.ts";
import { GramCollector } from "../../src/prune/gram.ts";
import { syntheticOperator } from "../../src/prune/problem.ts";
import { choleskyUpper, dampedInverseFactor, invertUpper, upperGram } from "../../src/prune/linalg.ts";
import { openExecutor } from "../../src/workers/index.ts";
import type { Executor } from "../../src/exec/executor.ts";

const wasm = createWasm(256 << 20);
const a = wasm.arena;
const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

async function gram(exec: Executor, n: number, seed: number, deadCols: number[] = []): Promise<number> {
  const tokens = Math.max(8, 2 * n);
  const { X } = syntheticOperator(wasm, { rows: 1, cols: n, tokens, seed, correlated: n > 8 });
  const x = a.f32(X, tokens * n);
  for (const j of deadCols) for (let t = 0; t < tokens; t++) x[t * n + j] = 0;
  const g = new GramCollector(exec, n);
  await g.addBatches([{ xp: X, xd: X, T: tokens }]);
  return g.finish().H;
}

/** float64 reference: the upper Cholesky factor of A⁻¹ through the inverse (SparseGPT's three steps). */
function refFactor(A: Float64Array, n: number): Float64Array {
  const L = Float64Array.from(A);
  for (let j = 0; j < n; j++) {
    for (let k = 0; k < j; k++) L[j * n + j]! -= L[j * n + k]! ** 2;
    L[j * n + j] = Math.sqrt(L[j * n + j]!);
    for (let i = j + 1; i < n; i++) {
      let t = L[i * n + j]!;
      for (let k = 0; k < j; k++) t -= L[i * n + k]! * L[j * n + k]!;
      L[i * n + j] = t / L[j * n + j]!;
    }
  }
  // A⁻¹ by solving L·Lᵀ·x = e_j, column by column
  const inv = new Float64Array(n * n);
  const y = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    for (let i = 0; i < n; i++) {
      let t = i === c ? 1 : 0;
      for (let k = 0; k < i; k++) t -= L[i * n + k]! * y[k]!;
      y[i] = t / L[i * n + i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let t = y[i]!;
      for (let k = i + 1; k < n; k++) t -= L[k * n + i]! * inv[k * n + c]!;
      inv[i * n + c] = t / L[i * n + i]!;
    }
  }
  // upper Cholesky of inv: inv = UᵀU
  const U = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = inv[j * n + j]!;
    for (let k = 0; k < j; k++) s -= U[k * n + j]! ** 2;
    U[j * n + j] = Math.sqrt(s);
    for (let i = j + 1; i < n; i++) {
      let t = inv[j * n + i]!;
      for (let k = 0; k < j; k++) t -= U[k * n + j]! * U[k * n + i]!;
      U[j * n + i] = t / U[j * n + j]!;
    }
  }
  return U;
}

/** max |x − ref| / max |ref| */
function relErr(x: Float32Array, ref: Float64Array): number {
  let e = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    e = Math.max(e, Math.abs(x[i]! - ref[i]!));
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return e / m;
}

test("the upper Cholesky factor of (H + δI)⁻¹ matches a float64 reference; UᵀU is the inverse", async () => {
  const exec = openExecutor(wasm, 1);
  try {
    for (const n of [1, 2, 3, 7, 8, 9, 31, 127, 128, 129, 200, 300]) {
      const m = a.mark();
      const dead = n > 6 ? [1, n - 2] : [];
      const H = await gram(exec, n, n, dead);
      const U = a.alloc(n * n);
      const info = await dampedInverseFactor(exec, H, n, 0.01, U);
      assert.deepEqual(info.dead, dead, `n=${n}: dead inputs`);
      const h = a.f32(H, n * n);
      let mean = 0;
      for (let j = 0; j < n; j++) mean += h[j * n + j] === 0 ? 1 : h[j * n + j]!;
      assert.equal(info.damp, 0.01 * (mean / n), `n=${n}: δ = 1% of the mean diagonal`);
      const Hd = Float64Array.from(h);
      for (const j of dead) Hd[j * n + j] = 1;
      for (let j = 0; j < n; j++) Hd[j * n + j]! += info.damp;
      const u = a.f32(U, n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.ok(Object.is(u[i * n + j], 0), `n=${n}: U[${i},${j}] is +0`);
      const err = relErr(u, refFactor(Hd, n));
      assert.ok(err < 2e-4, `n=${n}: factor relative error ${err}`);
      // UᵀU·(H + δI) = I
      const full = a.alloc(n * n);
      await upperGram(exec, U, n, full);
      const f = a.f32(full, n * n);
      let worst = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += f[i * n + k]! * Hd[k * n + j]!;
          worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
          assert.equal(f[i * n + j], f[j * n + i], `n=${n}: UᵀU symmetric`);
        }
      }
      assert.ok(worst < 1e-3, `n=${n}: |UᵀU·(H + δI) − I| = ${worst}`);
      a.release(m);
    }
  } finally {
    await exec.close();
  }
});

test("blocked factor, inverse and UᵀU give the same bytes on one and two threads", async () => {
  const n = 389;
  const one = openExecutor(wasm, 1);
  const two = openExecutor(wasm, 2);
  try {
    const H = await gram(one, n, 5);
    const out: Buffer[] = [];
    for (const exec of [one, two]) {
      const U = a.alloc(n * n);
      await dampedInverseFactor(exec, H, n, 0.01, U);
      const full = a.alloc(n * n);
      await upperGram(exec, U, n, full);
      out.push(Buffer.concat([bytes(a.f32(U, n * n)), bytes(a.f32(full, n * n))]));
    }
    assert.ok(out[0]!.equals(out[1]!));
  } finally {
    await one.close();
    await two.close();
  }
});

test("choleskyUpper refuses an indefinite matrix; invertUpper inverts a triangle", async () => {
  const exec = openExecutor(wasm, 1);
  try {
    const n = 150;
    const A = a.alloc(n * n);
    const x = a.f32(A, n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) x[i * n + j] = i === j ? (i === 140 ? -1 : 2) : 0.01;
    assert.equal(await choleskyUpper(exec, A, n), false, "a negative pivot past the first block");
    const V = a.alloc(n * n);
    const v = a.f32(V, n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) v[i * n + j] = j < i ? 0 : j === i ? 1 + (i % 5) : Math.sin(i + 2 * j) / n;
    const orig = v.slice();
    await invertUpper(exec, V, n);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += orig[i * n + k]! * v[k * n + j]!;
        worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
      }
    }
    assert.ok(worst < 1e-5, `V·V⁻¹ − I: ${worst}`);
  } finally {
    await exec.close();
  }
});
