// The Gram sums of pruning calibration on the strided GEMM (f32_gemm_strided, gemm.ts): H += XᵀX (upper
// triangle, then mirrored), the cross term C += AᵀB, and the Gram diagonal alone (column sums of squares).
import { f32_gemm_strided } from "./gemm";

// @ts-ignore: decorator
@inline const KC: i32 = 256; // gemm.ts's K block: f32_col_sumsq sums the diagonal in the same blocks, bit for bit

/** H[cols,cols] += XᵀX for X [T, cols] row-major: upper triangle only (call f32_sym_mirror when done). */
export function f32_gram_upper(x: usize, h: usize, T: i32, cols: i32): void {
  f32_gemm_strided(x, 1, cols, x, cols, h, cols, cols, cols, T, 1, 1, 1, 0);
}

/**
 * Rows [i0, i1) of f32_gram_upper: H[i, j] += Σ_t X[t, i]·X[t, j] for i0 ≤ i < i1, j ≥ i. Every element is
 * the same sum as in the whole-matrix call (the summation order does not depend on the tile an element falls
 * in), so threads that split the rows of H (src/parallel) give a bit-identical H for any split. `pack`: the
 * strided GEMM's scratch (f32_gemm_strided_scratch bytes, 16-aligned) or 0.
 */
export function f32_gram_upper_rows(x: usize, h: usize, T: i32, cols: i32, i0: i32, i1: i32, pack: usize): void {
  assert(0 <= i0 && i0 <= i1 && i1 <= cols);
  if (i1 == i0) return;
  const o = <usize>i0 << 2;
  f32_gemm_strided(x + o, 1, cols, x + o, cols, h + <usize>i0 * (<usize>cols << 2) + o, cols, i1 - i0, cols - i0, T, 1, 1, 1, pack);
}

/** C[cols,cols] += Aᵀ·B for A, B [T, cols] row-major (the cross term X_dᵀX_p). */
export function f32_gram_cross(a: usize, b: usize, c: usize, T: i32, cols: i32): void {
  f32_gemm_strided(a, 1, cols, b, cols, c, cols, cols, cols, T, 1, 1, 0, 0);
}

/** H[j,i] = H[i,j] for i < j: copy the upper triangle onto the lower one. */
export function f32_sym_mirror(h: usize, n: i32): void {
  const ldB = <usize>n << 2;
  for (let i = 1; i < n; i++) {
    const row = h + <usize>i * ldB;
    for (let j = 0; j < i; j++) store<f32>(row + (<usize>j << 2), load<f32>(h + <usize>j * ldB + (<usize>i << 2)));
  }
}

/**
 * out[j] += Σ_t X[t, j]² for X [T, cols] row-major: the diagonal of f32_gram_upper's H += XᵀX, bit for bit (the
 * same per-element order: per block of KC tokens a sum from 0 in token order, then added to out), at O(T·cols)
 * instead of O(T·cols²) — the calibration statistic of Wanda (its column norms ‖x_j‖₂²).
 */
export function f32_col_sumsq(x: usize, out: usize, T: i32, cols: i32): void {
  assert(T >= 0 && cols >= 0);
  const ldB = <usize>cols << 2;
  const c4 = cols & ~3;
  for (let k0 = 0; k0 < T; k0 += KC) {
    const kc = min(KC, T - k0);
    const xk = x + <usize>k0 * ldB;
    let j = 0;
    for (; j < c4; j += 4) {
      let vacc = f32x4.splat(0);
      let p = xk + (<usize>j << 2);
      for (let t = 0; t < kc; t++) {
        const v = v128.load(p);
        vacc = f32x4.add(vacc, f32x4.mul(v, v));
        p += ldB;
      }
      const o = out + (<usize>j << 2);
      v128.store(o, f32x4.add(v128.load(o), vacc));
    }
    for (; j < cols; j++) {
      let acc: f32 = 0;
      let p = xk + (<usize>j << 2);
      for (let t = 0; t < kc; t++) {
        const v = load<f32>(p);
        acc += v * v;
        p += ldB;
      }
      const o = out + (<usize>j << 2);
      store<f32>(o, load<f32>(o) + acc);
    }
  }
}
