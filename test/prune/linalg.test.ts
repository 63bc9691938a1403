// The WASM linear-algebra kernels (assembly/f32-cholesky.ts) against the TypeScript reference
// (src/prune/linalg.ts): bit for bit, on odd sizes where every tile edge occurs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createWasm } from "../../src/wasm/runtime.ts";
import { GramCollector } from "../../src/prune/gram.ts";
import { syntheticOperator } from "../../src/prune/problem.ts";
import { choleskyLower, choleskyUpper, choleskyWasm, dampedInverse, dampedInverseWasm } from "../../src/prune/linalg.ts";
import { openExecutor } from "../../src/workers/index.ts";
import { kernels } from "../../src/kernels/index.js";

const wasm = createWasm(64 << 20);
const a = wasm.arena;
const exec = openExecutor(wasm, 1);
const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

async function gram(n: number, seed: number, deadCols: number[] = []): Promise<number> {
  const tokens = Math.max(8, 2 * n);
  const { X } = syntheticOperator(wasm, { rows: 1, cols: n, tokens, seed, correlated: n > 8 });
  const x = a.f32(X, tokens * n);
  for (const j of deadCols) for (let t = 0; t < tokens; t++) x[t * n + j] = 0;
  const g = new GramCollector(exec, n);
  await g.addBatches([{ xp: X, xd: X, T: tokens }]);
  return g.finish().H;
}

test("WASM Cholesky (lower, upper) and damped inverse equal the TypeScript reference bit for bit", async () => {
  for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 13, 31, 64, 77, 130]) {
    const m = a.mark();
    const H = await gram(n, n, n > 6 ? [1, n - 2] : []);
    // damped inverse (dead columns included)
    const ref = new Float32Array(n * n);
    const rInfo = dampedInverse(a.f32(H, n * n).slice(), n, 0.01, new Float32Array(n * n), ref);
    const out = a.alloc(n * n);
    const wInfo = await dampedInverseWasm(wasm, H, n, 0.01, out);
    assert.deepEqual(wInfo, rInfo, `n=${n}: dead/damp`);
    assert.ok(bytes(a.f32(out, n * n)).equals(bytes(ref)), `n=${n}: (H + δI)⁻¹`);
    // its upper factor (SparseGPT's Hinv) and the lower factor
    const up = ref.slice();
    assert.ok(choleskyUpper(up, n));
    assert.ok(choleskyWasm(wasm, out, n, true));
    assert.ok(bytes(a.f32(out, n * n)).equals(bytes(up)), `n=${n}: upper Cholesky`);
    const lo = ref.slice();
    assert.ok(choleskyLower(lo, n));
    const L = a.put(ref);
    assert.ok(choleskyWasm(wasm, L, n, false));
    assert.ok(bytes(a.f32(L, n * n)).equals(bytes(lo)), `n=${n}: lower Cholesky`);
    a.release(m);
  }
});

test("WASM Cholesky: not positive definite -> false, input untouched; the MᵀM rows split freely", () => {
  const n = 6;
  const A = a.put(Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? (i === 2 * (n + 1) ? -1 : 2) : 0.1)));
  const before = a.f32(A, n * n).slice();
  assert.equal(choleskyWasm(wasm, A, n, false), false);
  assert.deepEqual(a.f32(A, n * n), before);
  // f32_tril_gram_rows over row blocks [0,4) + [4,n) equals one call
  const k = kernels(wasm);
  const N = 23;
  const M = a.put(Float32Array.from({ length: N * N }, (_, i) => ((i % N) <= Math.floor(i / N) ? Math.sin(i) : 0)));
  const scratch = a.allocBytes(k.f32_tril_gram_scratch(N));
  const one = a.alloc(N * N);
  const two = a.alloc(N * N);
  k.f32_tril_gram_rows(M, N, one, 0, N, scratch);
  k.f32_tril_gram_rows(M, N, two, 0, 8, scratch);
  k.f32_tril_gram_rows(M, N, two, 8, 20, scratch);
  k.f32_tril_gram_rows(M, N, two, 20, N, scratch);
  assert.ok(bytes(a.f32(one, N * N)).equals(bytes(a.f32(two, N * N))));
});
