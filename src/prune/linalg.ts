/**
 * @file Dense symmetric positive-definite linear algebra for SparseGPT (and the least-squares solution of error
 * correction): the upper Cholesky factor of (H + δI)⁻¹, the matrix of SparseGPT's OBS loop, and (H + δI)⁻¹
 * itself. Row-major f32 arena blocks.
 *
 * Blocked, as LAPACK does it (potrf/trtri), so that the O(n³) work is GEMM: blocks of NB columns; a block's
 * diagonal part by a small kernel (assembly/f32-cholesky.ts, f64 sums inside the block), everything else by
 * f32_gemm_strided (f32 accumulation) cut into chunks of a fixed size and run over the executor's slots (the
 * same bytes for any thread count: each chunk is the same call wherever it runs).
 *
 * SparseGPT's reference takes three O(n³) passes: cholesky(H) → cholesky_inverse → cholesky(upper) of the
 * inverse. Two suffice: with J the exchange matrix (J·A·J reverses rows and columns), if J·H·J = VᵀV (V upper,
 * an ordinary upper Cholesky factor) then H⁻¹ = J·V⁻¹·V⁻ᵀ·J = UᵀU with U = J·V⁻ᵀ·J upper — and the upper
 * Cholesky factor is unique, so U is exactly torch.linalg.cholesky(H⁻¹, upper=True) (up to rounding). So:
 * reverse, factor, invert, anti-transpose (J·Xᵀ·J), all in the output's own n² floats.
 *
 * `choleskyLower` is the plain scalar factor for the small systems of structured pruning (src/structured).
 */
import { UsageError } from "../errors.js";
import type { Executor } from "../exec/executor.js";
import { kernels } from "../kernels/index.js";
import { gemmCalls, type StridedCall } from "../kernels/products.js";

/**
 * In place: A (n×n, symmetric; only the lower triangle is read) becomes L, lower triangular with A = L·Lᵀ
 * (the strict upper triangle is zeroed). Returns false when A is not numerically positive definite.
 */
export function choleskyLower(a: Float32Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let s = a[rj + j];
    for (let k = 0; k < j; k++) s -= a[rj + k] * a[rj + k];
    if (!(s > 0)) return false;
    const d = Math.sqrt(s);
    a[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let t = a[ri + j];
      for (let k = 0; k < j; k++) t -= a[ri + k] * a[rj + k];
      a[ri + j] = t / d;
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 0;
  return true;
}

// ---- the blocked algorithms -----------------------------------------------------------------------------

/** Columns per block of the blocked factorizations (the diagonal kernels' size; the GEMMs' K). */
const NB = 128;
/** Columns (or rows) per GEMM chunk: the unit of work split over the slots, fixed so the split is free. */
const CHUNK = 128;

/** [c0, c1) chunks of [0, n). */
function chunks(n: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let c0 = 0; c0 < n; c0 += CHUNK) out.push([c0, Math.min(n, c0 + CHUNK)]);
  return out;
}

/** A strided call with the usual defaults: C = 1·op(A)·B, every element. */
function call(c: Omit<StridedCall, "alpha" | "accumulate" | "upper"> & Partial<StridedCall>): StridedCall {
  return { alpha: 1, accumulate: 0, upper: 0, ...c };
}

/** Copy the rows×cols block at `src` (row stride lds floats) to `dst` (row stride ldd). */
function copyBlock(exec: Executor, src: number, lds: number, dst: number, ldd: number, rows: number, cols: number): void {
  const a = exec.wasm.arena;
  for (let i = 0; i < rows; i++) a.f32(dst + 4 * i * ldd, cols).set(a.f32(src + 4 * i * lds, cols));
}

/** T (b×b, contiguous) = the inverse of the upper triangular b×b diagonal block at `A11` (row stride n). */
function invertDiagonalBlock(exec: Executor, A11: number, n: number, b: number, T: number): void {
  copyBlock(exec, A11, n, T, b, b, b);
  kernels(exec.wasm).f32_trtri_upper(T, b, b);
}

/**
 * In place: A (n×n, symmetric; its upper triangle is read) becomes U, upper triangular with A = UᵀU (strict lower
 * triangle zeroed). Right-looking by blocks of NB: factor the diagonal block (U₁₁), U₁₂ = U₁₁⁻ᵀ·A₁₂ (GEMM with the
 * small explicit inverse), A₂₂ −= U₁₂ᵀU₁₂ (upper triangle only). Returns false when A is not numerically
 * positive definite (A is then partly overwritten).
 */
export async function choleskyUpper(exec: Executor, A: number, n: number): Promise<boolean> {
  const k = kernels(exec.wasm);
  const a = exec.wasm.arena;
  const mark = a.mark();
  try {
    const T = a.alloc(NB * NB);
    const P = a.alloc(NB * Math.max(n - NB, 0));
    for (let j0 = 0; j0 < n; j0 += NB) {
      const j1 = Math.min(n, j0 + NB);
      const b = j1 - j0;
      const r = n - j1;
      const A11 = A + 4 * (j0 * n + j0);
      if (k.f32_potrf_upper(A11, n, b) !== 1) return false;
      if (r === 0) break;
      // T = U₁₁⁻¹; P = A₁₂; A₁₂ ← U₁₂ = Tᵀ·P, by column chunks
      invertDiagonalBlock(exec, A11, n, b, T);
      const A12 = A + 4 * (j0 * n + j1);
      copyBlock(exec, A12, n, P, r, b, r);
      await gemmCalls(exec, chunks(r).map(([c0, c1]) => call({
        a: T, sai: 1, sak: b, b: P + 4 * c0, ldb: r, c: A12 + 4 * c0, ldc: n, M: b, N: c1 - c0, K: b,
      })), `Cholesky, columns ${j0}..${j1 - 1}`);
      // A₂₂[i, j ≥ i] −= Σ_k U₁₂[k, i]·U₁₂[k, j], by row chunks of the triangle
      const A22 = A + 4 * (j1 * n + j1);
      await gemmCalls(exec, chunks(r).map(([i0, i1]) => call({
        a: A12 + 4 * i0, sai: 1, sak: n, b: A12 + 4 * i0, ldb: n, c: A22 + 4 * (i0 * n + i0), ldc: n,
        M: i1 - i0, N: r - i0, K: b, alpha: -1, accumulate: 1, upper: 1,
      })), `Cholesky, trailing update after column ${j1 - 1}`);
    }
    const m = a.f32(A, n * n);
    for (let i = 1; i < n; i++) m.fill(0, i * n, i * n + i);
    return true;
  } finally {
    a.release(mark);
  }
}

/**
 * In place: V (n×n upper triangular, nonzero diagonal) becomes X = V⁻¹ (upper). Block rows from the last:
 * with the rows below already inverted, X₁₂ = −V₁₁⁻¹·(V₁₂·X₂₂) and X₁₁ = V₁₁⁻¹; the product V₁₂·X₂₂ by column
 * chunks of X₂₂, each summing only the rows of X₂₂ above its last column (the rest are zeros).
 */
export async function invertUpper(exec: Executor, V: number, n: number): Promise<void> {
  const a = exec.wasm.arena;
  const mark = a.mark();
  try {
    const T = a.alloc(NB * NB);
    const C = a.alloc(NB * Math.max(n - NB, 0));
    const last = Math.floor((n - 1) / NB) * NB;
    for (let i0 = last; i0 >= 0; i0 -= NB) {
      const i1 = Math.min(n, i0 + NB);
      const b = i1 - i0;
      const r = n - i1;
      const V11 = V + 4 * (i0 * n + i0);
      invertDiagonalBlock(exec, V11, n, b, T);
      if (r > 0) {
        const V12 = V + 4 * (i0 * n + i1);
        const X22 = V + 4 * (i1 * n + i1);
        await gemmCalls(exec, chunks(r).map(([c0, c1]) => call({
          a: V12, sai: n, sak: 1, b: X22 + 4 * c0, ldb: n, c: C + 4 * c0, ldc: r, M: b, N: c1 - c0, K: c1,
        })), `triangular inverse, rows ${i0}..${i1 - 1}`);
        await gemmCalls(exec, chunks(r).map(([c0, c1]) => call({
          a: T, sai: b, sak: 1, b: C + 4 * c0, ldb: r, c: V12 + 4 * c0, ldc: n, M: b, N: c1 - c0, K: b, alpha: -1,
        })), `triangular inverse, rows ${i0}..${i1 - 1}`);
      }
      copyBlock(exec, T, b, V11, n, b, b);
    }
  } finally {
    a.release(mark);
  }
}

/** out = UᵀU for U (n×n) upper triangular (zero strict lower triangle): by row chunks of the upper triangle, mirrored. */
export async function upperGram(exec: Executor, U: number, n: number, out: number): Promise<void> {
  // element (i, j ≥ i) sums k ≤ i; a chunk of rows [i0, i1) sums k < i1 (U[k, i] = 0 for k > i)
  await gemmCalls(exec, chunks(n).map(([i0, i1]) => call({
    a: U + 4 * i0, sai: 1, sak: n, b: U + 4 * i0, ldb: n, c: out + 4 * (i0 * n + i0), ldc: n, M: i1 - i0, N: n - i0, K: i1, upper: 1,
  })), "H⁻¹ = UᵀU");
  kernels(exec.wasm).f32_sym_mirror(out, n);
}

/**
 * SparseGPT's preparation of a Gram matrix H (n×n): dead inputs (H_jj = 0) get H_jj = 1, δ = percdamp·mean(diag H),
 * and `out` (n×n) = the upper Cholesky factor of (H + δI)⁻¹. Retries with 10× the damping when the factorization
 * fails (a rank-deficient H in float32). H is not modified.
 */
export async function dampedInverseFactor(
  exec: Executor, H: number, n: number, percDamp: number, out: number,
): Promise<{ dead: number[]; damp: number }> {
  const a = exec.wasm.arena;
  const h = a.f32(H, n * n);
  const dead: number[] = [];
  let mean = 0;
  for (let j = 0; j < n; j++) {
    const d = h[j * n + j]!;
    if (d === 0) dead.push(j);
    mean += d === 0 ? 1 : d;
  }
  mean /= n;
  let damp = percDamp * mean;
  for (let attempt = 0; attempt < 8; attempt++) {
    // J·(H + δI)·J: the flat array reversed
    const w = a.f32(out, n * n);
    w.set(a.f32(H, n * n));
    for (const j of dead) w[j * n + j] = 1;
    for (let j = 0; j < n; j++) w[j * n + j]! += damp;
    w.reverse();
    if (await choleskyUpper(exec, out, n)) {
      await invertUpper(exec, out, n);
      antiTranspose(a.f32(out, n * n), n);
      return { dead, damp };
    }
    damp = damp > 0 ? damp * 10 : 1e-6 * mean;
  }
  throw new UsageError(`Gram matrix of width ${n} is not positive definite even with damping ${damp}: non-finite activations?`);
}

/** In place: X (n×n) becomes J·Xᵀ·J, i.e. X[i, j] ↔ X[n−1−j, n−1−i]: the flat array reversed, then transposed. */
function antiTranspose(x: Float32Array, n: number): void {
  x.reverse();
  const B = 64;
  for (let i0 = 0; i0 < n; i0 += B) {
    for (let j0 = i0; j0 < n; j0 += B) {
      const i1 = Math.min(n, i0 + B);
      const j1 = Math.min(n, j0 + B);
      for (let i = i0; i < i1; i++) {
        for (let j = Math.max(j0, i + 1); j < j1; j++) {
          const p = i * n + j;
          const q = j * n + i;
          const t = x[p]!;
          x[p] = x[q]!;
          x[q] = t;
        }
      }
    }
  }
}
