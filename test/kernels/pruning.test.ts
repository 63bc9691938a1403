// Pruning kernels (assembly/f32-gram.ts, f32-nm.ts, f32-fista.ts) against scalar TypeScript references on
// awkward shapes. The Gram/GEMM reference replays the kernel's documented summation order (k-blocks of 256,
// f32), so the comparison is exact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createWasm } from "../../src/wasm/runtime.js";
import { gaussianPairs as gaussian } from "../../src/util/rng.js";
import { kernels } from "../../src/kernels/index.js";

const wasm = createWasm();
const k = kernels(wasm);
const a = wasm.arena;
const f = Math.fround;

function randArr(n: number, seed: number): Float32Array {
  const g = gaussian(seed);
  return Float32Array.from({ length: n }, () => g());
}

/** C (+)= alpha·Aᵀ·B in the kernel's order: per k-block of 256, f32 sum from 0, scaled, added. */
function refAtB(A: Float32Array, B: Float32Array, C: Float32Array, T: number, M: number, N: number, alpha: number, acc: boolean): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let c = acc ? C[i * N + j] : 0;
      for (let k0 = 0; k0 < T; k0 += 256) {
        let s = 0;
        for (let t = k0; t < Math.min(T, k0 + 256); t++) s = f(s + f(A[t * M + i] * B[t * N + j]));
        c = k0 === 0 && !acc ? f(f(alpha) * s) : f(c + f(f(alpha) * s));
      }
      C[i * N + j] = c;
    }
  }
}

test("f32_gram_upper + f32_sym_mirror equal the scalar XᵀX exactly on awkward shapes", () => {
  for (const [T, cols] of [[1, 1], [7, 3], [5, 8], [33, 13], [300, 17], [260, 36], [9, 40]]) {
    a.scoped(() => {
      const x = randArr(T * cols, T * 100 + cols);
      const X = a.put(x);
      const h0 = randArr(cols * cols, 5);
      for (let i = 0; i < cols; i++) for (let j = 0; j < i; j++) h0[i * cols + j] = h0[j * cols + i];
      const H = a.put(h0);
      k.f32_gram_upper(X, H, T, cols);
      k.f32_sym_mirror(H, cols);
      const ref = h0.slice();
      refAtB(x, x, ref, T, cols, cols, 1, true);
      const got = a.f32(H, cols * cols);
      for (let i = 0; i < cols * cols; i++) {
        assert.equal(got[i], ref[i], `T=${T} cols=${cols} at (${Math.floor(i / cols)},${i % cols})`);
      }
    });
  }
});

test("f32_gram_cross and f32_gemm_strided (alpha, accumulate, A·B) match the references", () => {
  for (const [T, cols] of [[3, 5], [270, 12], [17, 9]]) {
    a.scoped(() => {
      const x = randArr(T * cols, 1 + T), y = randArr(T * cols, 2 + cols);
      const C = a.zeros(cols * cols);
      k.f32_gram_cross(a.put(x), a.put(y), C, T, cols);
      const ref = new Float32Array(cols * cols);
      refAtB(x, y, ref, T, cols, cols, 1, true);
      assert.deepEqual(Array.from(a.f32(C, cols * cols)), Array.from(ref), `cross T=${T} cols=${cols}`);
    });
  }
  // plain A·B (W·H) with alpha = −1, accumulate, on a sub-block with leading dimensions
  for (const [M, N, K] of [[5, 11, 3], [8, 16, 300], [3, 2, 1]]) {
    a.scoped(() => {
      const w = randArr(M * K, M), h = randArr(K * N, N), c0 = randArr(M * N, K);
      const C = a.put(c0);
      k.f32_gemm_strided(a.put(w), K, 1, a.put(h), N, C, N, M, N, K, -1, 1, 0, a.allocBytes(k.f32_gemm_strided_scratch()));
      // reference: Aᵀ of w is w viewed [K, M] transposed
      const wt = new Float32Array(K * M);
      for (let i = 0; i < M; i++) for (let kk = 0; kk < K; kk++) wt[kk * M + i] = w[i * K + kk];
      const ref = c0.slice();
      refAtB(wt, h, ref, K, M, N, -1, true);
      assert.deepEqual(Array.from(a.f32(C, M * N)), Array.from(ref), `gemm M=${M} N=${N} K=${K}`);
    });
  }
});

/** keep-mask of the k largest |s| (ties: lower index). */
function refTopk(s: Float32Array, k: number): number[] {
  const idx = Array.from(s.keys()).sort((i, j) => Math.abs(s[j]) - Math.abs(s[i]) || i - j);
  const m = new Array<number>(s.length).fill(0);
  for (const i of idx.slice(0, Math.max(k, 0))) m[i] = 1;
  return m;
}

test("f32_topk_mask: per row top-k with ties broken by index; k = 0 and k = cols", () => {
  for (const [rows, cols, kk] of [[3, 10, 4], [2, 7, 0], [2, 7, 7], [4, 33, 17], [1, 1000, 500]]) {
    a.scoped(() => {
      const g = gaussian(rows * cols + kk);
      // quantised scores: many exact ties, some negative (read as |s|)
      const s = Float32Array.from({ length: rows * cols }, () => Math.round(g() * 3) / 2);
      const M = a.alloc(rows * cols);
      k.f32_topk_mask(a.put(s), M, rows, cols, kk);
      const got = Array.from(a.f32(M, rows * cols));
      for (let r = 0; r < rows; r++) {
        assert.deepEqual(got.slice(r * cols, (r + 1) * cols), refTopk(s.subarray(r * cols, (r + 1) * cols), kk), `rows=${rows} cols=${cols} k=${kk} row ${r}`);
      }
    });
  }
});

test("f32_nm_mask: top-N of every M (M multiple of 4 via SIMD, others scalar), ties by index", () => {
  for (const [rows, cols, n, m] of [[3, 8, 2, 4], [2, 16, 4, 8], [2, 12, 1, 3], [5, 32, 3, 16], [1, 6, 1, 2]]) {
    a.scoped(() => {
      const g = gaussian(cols * n + m);
      const s = Float32Array.from({ length: rows * cols }, () => Math.round(g() * 2) / 2);
      const M = a.alloc(rows * cols);
      k.f32_nm_mask(a.put(s), M, rows, cols, n, m);
      const got = Array.from(a.f32(M, rows * cols));
      for (let g0 = 0; g0 < rows * cols; g0 += m) {
        assert.deepEqual(got.slice(g0, g0 + m), refTopk(s.subarray(g0, g0 + m), n), `${n}:${m} group at ${g0}`);
      }
    });
  }
});

test("f32_row_nnz, f32_mask_mul, f32_row_dot", () => {
  a.scoped(() => {
    const w = Float32Array.from([0, 1, -2, 0, 0, 3, 0, 4, 5, -0, 6]);
    const out = a.alloc(1);
    k.f32_row_nnz(a.put(w), out, 1, 11);
    assert.equal(a.i32(out, 1)[0], 6);
    const m = Float32Array.from(w, (_, i) => i % 2);
    const O = a.alloc(11);
    k.f32_mask_mul(a.put(w), a.put(m), O, 11);
    // selection, not multiplication: a masked-out weight is +0.0 (−2·0 would be −0.0), kept ones unchanged
    const want = Float32Array.from(w, (v, i) => (i % 2 ? v : 0));
    const bitsOf = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
    assert.deepEqual(bitsOf(a.f32(O, 11)), bitsOf(want));
    const d = a.alloc(1);
    k.f32_row_dot(a.put(w), a.put(w), d, 1, 11);
    assert.equal(a.f32(d, 1)[0], 1 + 4 + 9 + 16 + 25 + 36);
  });
});
