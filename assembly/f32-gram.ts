// f32 Gram / strided GEMM: C[M,N] (+)= alpha · op(A) · B, where element (i,k) of op(A) is at
// a + 4·(i·sai + k·sak) (floats). With sai = 1, sak = lda this is Aᵀ·B for A stored [K, M] row-major — the
// Gram update H += XᵀX of the pruning calibration (X rows are tokens); with sai = lda, sak = 1 it is the
// plain A·B for A [M, K] row-major — the W·H step of FISTA (assembly/f32-fista.ts calls it).
//
// Blocking: k in blocks of KC (256) and j in blocks of NC (64) so the B block (KC×NC floats = 64 KiB) stays
// in L2 while every 4-row strip of op(A) passes over it; the register tile is 4 rows × 8 columns
// (vacc0_0123 … vacc3_4567: 8 accumulators + 2 B vectors + 1 splat, fits 16 xmm registers).
// Edges (M mod 4 rows, N mod 8 columns) go through a scalar loop with the same k order.
//
// Summation order (deterministic, independent of the edge path): for every element, per k-block, the
// products are summed in k order starting from 0 and the block sum is added to C (after the alpha scale):
//   C = ((C₀ + α·S_kb0) + α·S_kb1) + …   (C₀ = 0 when accumulate = 0).
// In particular for the Gram update the (i,j) and (j,i) elements are bit-identical sums, so computing only
// the upper triangle (upper = 1: tiles with j0 + 8 ≤ i0 are skipped, edge elements with j < i too) and then
// mirroring (f32_sym_mirror) gives the same matrix as the full product.

// @ts-ignore: decorator
@inline const KC: i32 = 256;
// @ts-ignore: decorator
@inline const NC: i32 = 64;

// @ts-ignore: decorator
@inline
function tile4x8(
  a: usize, sai: usize, sak: usize, b: usize, ldb: usize, c: usize, ldc: usize,
  K: i32, valpha: v128, addC: bool,
): void {
  let vacc0_0123 = f32x4.splat(0), vacc0_4567 = f32x4.splat(0);
  let vacc1_0123 = f32x4.splat(0), vacc1_4567 = f32x4.splat(0);
  let vacc2_0123 = f32x4.splat(0), vacc2_4567 = f32x4.splat(0);
  let vacc3_0123 = f32x4.splat(0), vacc3_4567 = f32x4.splat(0);
  let pa = a;
  let pb = b;
  for (let k = 0; k < K; k++) {
    const vb0123 = v128.load(pb);
    const vb4567 = v128.load(pb, 16);
    const va0 = f32x4.splat(load<f32>(pa));
    vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(va0, vb0123));
    vacc0_4567 = f32x4.add(vacc0_4567, f32x4.mul(va0, vb4567));
    const va1 = f32x4.splat(load<f32>(pa + sai));
    vacc1_0123 = f32x4.add(vacc1_0123, f32x4.mul(va1, vb0123));
    vacc1_4567 = f32x4.add(vacc1_4567, f32x4.mul(va1, vb4567));
    const va2 = f32x4.splat(load<f32>(pa + 2 * sai));
    vacc2_0123 = f32x4.add(vacc2_0123, f32x4.mul(va2, vb0123));
    vacc2_4567 = f32x4.add(vacc2_4567, f32x4.mul(va2, vb4567));
    const va3 = f32x4.splat(load<f32>(pa + 3 * sai));
    vacc3_0123 = f32x4.add(vacc3_0123, f32x4.mul(va3, vb0123));
    vacc3_4567 = f32x4.add(vacc3_4567, f32x4.mul(va3, vb4567));
    pa += sak;
    pb += ldb;
  }
  vacc0_0123 = f32x4.mul(vacc0_0123, valpha);
  vacc0_4567 = f32x4.mul(vacc0_4567, valpha);
  vacc1_0123 = f32x4.mul(vacc1_0123, valpha);
  vacc1_4567 = f32x4.mul(vacc1_4567, valpha);
  vacc2_0123 = f32x4.mul(vacc2_0123, valpha);
  vacc2_4567 = f32x4.mul(vacc2_4567, valpha);
  vacc3_0123 = f32x4.mul(vacc3_0123, valpha);
  vacc3_4567 = f32x4.mul(vacc3_4567, valpha);
  const c1 = c + ldc;
  const c2 = c1 + ldc;
  const c3 = c2 + ldc;
  if (addC) {
    vacc0_0123 = f32x4.add(v128.load(c), vacc0_0123);
    vacc0_4567 = f32x4.add(v128.load(c, 16), vacc0_4567);
    vacc1_0123 = f32x4.add(v128.load(c1), vacc1_0123);
    vacc1_4567 = f32x4.add(v128.load(c1, 16), vacc1_4567);
    vacc2_0123 = f32x4.add(v128.load(c2), vacc2_0123);
    vacc2_4567 = f32x4.add(v128.load(c2, 16), vacc2_4567);
    vacc3_0123 = f32x4.add(v128.load(c3), vacc3_0123);
    vacc3_4567 = f32x4.add(v128.load(c3, 16), vacc3_4567);
  }
  v128.store(c, vacc0_0123);
  v128.store(c, vacc0_4567, 16);
  v128.store(c1, vacc1_0123);
  v128.store(c1, vacc1_4567, 16);
  v128.store(c2, vacc2_0123);
  v128.store(c2, vacc2_4567, 16);
  v128.store(c3, vacc3_0123);
  v128.store(c3, vacc3_4567, 16);
}

// @ts-ignore: decorator
@inline
function edge1x1(a: usize, sak: usize, b: usize, ldb: usize, c: usize, K: i32, alpha: f32, addC: bool): void {
  let acc: f32 = 0;
  let pa = a;
  let pb = b;
  for (let k = 0; k < K; k++) {
    acc += load<f32>(pa) * load<f32>(pb);
    pa += sak;
    pb += ldb;
  }
  acc *= alpha;
  store<f32>(c, addC ? load<f32>(c) + acc : acc);
}

/**
 * C[M,N] (+)= alpha · op(A)·B; op(A)(i,k) = a[i·sai + k·sak]; B [K, ldb]; C [M, ldc] (strides in floats).
 * accumulate = 1 adds to C; upper = 1 computes only elements with j ≥ i (Gram use; needs M ≤ N: a band of
 * rows of the triangle starting on the diagonal, see f32_gram_upper_rows).
 */
export function f32_gemm_strided(
  a: usize, sai: i32, sak: i32, b: usize, ldb: i32, c: usize, ldc: i32,
  M: i32, N: i32, K: i32, alpha: f32, accumulate: i32, upper: i32,
): void {
  assert(M >= 0 && N >= 0 && K >= 0 && (upper == 0 || M <= N));
  const saiB = <usize>sai << 2;
  const sakB = <usize>sak << 2;
  const ldbB = <usize>ldb << 2;
  const ldcB = <usize>ldc << 2;
  const valpha = f32x4.splat(alpha);
  const M4 = M & ~3;
  const N8 = N & ~7;
  if (K == 0) {
    if (accumulate == 0) {
      for (let i = 0; i < M; i++) for (let j = upper ? i : 0; j < N; j++) store<f32>(c + <usize>i * ldcB + (<usize>j << 2), 0);
    }
    return;
  }
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const addC = accumulate != 0 || k0 > 0;
    const ak = a + <usize>k0 * sakB;
    const bk = b + <usize>k0 * ldbB;
    for (let j0 = 0; j0 < N8; j0 += NC) {
      const jEnd = min(j0 + NC, N8);
      for (let i = 0; i < M4; i += 4) {
        let js = j0;
        if (upper) {
          const jd = i & ~7; // the 8-column tile holding the diagonal element (i, i)
          if (jd >= jEnd) continue;
          if (jd > js) js = jd;
        }
        const ai = ak + <usize>i * saiB;
        const ci = c + <usize>i * ldcB;
        for (let j = js; j < jEnd; j += 8) {
          tile4x8(ai, saiB, sakB, bk + (<usize>j << 2), ldbB, ci + (<usize>j << 2), ldcB, kc, valpha, addC);
        }
      }
    }
    // edges: rows i ≥ M4 for every column, and columns j ≥ N8 for rows < M4
    for (let i = 0; i < M; i++) {
      const jFrom = i < M4 ? N8 : 0;
      for (let j = jFrom; j < N; j++) {
        if (upper && j < i) continue;
        edge1x1(ak + <usize>i * saiB, sakB, bk + (<usize>j << 2), ldbB, c + <usize>i * ldcB + (<usize>j << 2), kc, alpha, addC);
      }
    }
  }
}

/** H[cols,cols] += XᵀX for X [T, cols] row-major: upper triangle only (call f32_sym_mirror when done). */
export function f32_gram_upper(x: usize, h: usize, T: i32, cols: i32): void {
  f32_gemm_strided(x, 1, cols, x, cols, h, cols, cols, cols, T, 1, 1, 1);
}

/**
 * Rows [i0, i1) of f32_gram_upper: H[i, j] += Σ_t X[t, i]·X[t, j] for i0 ≤ i < i1, j ≥ i. Every element is
 * the same sum as in the whole-matrix call (the summation order does not depend on the tile an element falls
 * in), so threads that split the rows of H (src/parallel) give a bit-identical H for any split.
 */
export function f32_gram_upper_rows(x: usize, h: usize, T: i32, cols: i32, i0: i32, i1: i32): void {
  assert(0 <= i0 && i0 <= i1 && i1 <= cols);
  if (i1 == i0) return;
  const o = <usize>i0 << 2;
  f32_gemm_strided(x + o, 1, cols, x + o, cols, h + <usize>i0 * (<usize>cols << 2) + o, cols, i1 - i0, cols - i0, T, 1, 1, 1);
}

/** C[cols,cols] += Aᵀ·B for A, B [T, cols] row-major (the cross term X_dᵀX_p). */
export function f32_gram_cross(a: usize, b: usize, c: usize, T: i32, cols: i32): void {
  f32_gemm_strided(a, 1, cols, b, cols, c, cols, cols, cols, T, 1, 1, 0);
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
