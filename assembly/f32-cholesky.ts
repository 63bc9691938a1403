// The diagonal-block kernels of SparseGPT's blocked linear algebra (src/prune/linalg.ts runs the blocked
// algorithms; their O(n³) part is f32_gemm_strided): the upper Cholesky factor and the inverse of an upper
// triangular matrix, for one block of at most a few hundred columns, in place, row stride lda (floats).
// Storage is f32; each inner product accumulates in f64 in ascending k (cheap here: the blocks cost n·nb²
// in all, against n³/3 for the GEMMs), so a block's result never depends on where it sits in the matrix.

/**
 * In place: the leading n×n block of A (row stride lda floats; its upper triangle is read) becomes U, upper
 * triangular with A = UᵀU (torch.linalg.cholesky(A, upper=True)); the strict lower triangle is zeroed.
 * Returns 0 when A is not numerically positive definite (A then partly overwritten).
 */
export function f32_potrf_upper(a: usize, lda: i32, n: i32): i32 {
  assert(n >= 0 && lda >= n);
  const ld = <usize>lda << 2;
  for (let j = 0; j < n; j++) {
    const rj = a + <usize>j * ld;
    const cj = a + (<usize>j << 2);
    // U[j, j] = √(A[j, j] − Σ_{k<j} U[k, j]²)
    let s = <f64>load<f32>(rj + (<usize>j << 2));
    for (let k = 0; k < j; k++) {
      const u = <f64>load<f32>(cj + <usize>k * ld);
      s -= u * u;
    }
    if (!(s > 0)) return 0;
    const d = Math.sqrt(s);
    store<f32>(rj + (<usize>j << 2), <f32>d);
    // U[j, i] = (A[j, i] − Σ_{k<j} U[k, j]·U[k, i]) / U[j, j]   for i > j
    for (let i = j + 1; i < n; i++) {
      const ci = a + (<usize>i << 2);
      let t = <f64>load<f32>(rj + (<usize>i << 2));
      for (let k = 0; k < j; k++) t -= <f64>load<f32>(cj + <usize>k * ld) * <f64>load<f32>(ci + <usize>k * ld);
      store<f32>(rj + (<usize>i << 2), <f32>(t / d));
    }
  }
  for (let i = 1; i < n; i++) memory.fill(a + <usize>i * ld, 0, <usize>i << 2);
  return 1;
}

/**
 * In place: the leading n×n block of U (row stride lda floats; upper triangular with a nonzero diagonal)
 * becomes U⁻¹ (upper; the strict lower triangle is zeroed). Column by column (LAPACK trti2): with X the
 * inverse of the leading j×j block, X[i, j] = −(Σ_{k=i}^{j−1} X[i, k]·U[k, j]) / U[j, j] for i < j, ascending i
 * (each reads U[k ≥ i, j], not yet overwritten), and X[j, j] = 1 / U[j, j].
 */
export function f32_trtri_upper(a: usize, lda: i32, n: i32): void {
  assert(n >= 0 && lda >= n);
  const ld = <usize>lda << 2;
  for (let j = 0; j < n; j++) {
    const cj = a + (<usize>j << 2);
    const ujj = <f64>load<f32>(cj + <usize>j * ld);
    for (let i = 0; i < j; i++) {
      const ri = a + <usize>i * ld;
      let s: f64 = 0;
      for (let k = i; k < j; k++) s += <f64>load<f32>(ri + (<usize>k << 2)) * <f64>load<f32>(cj + <usize>k * ld);
      store<f32>(cj + <usize>i * ld, <f32>(-s / ujj));
    }
    store<f32>(cj + <usize>j * ld, <f32>(1 / ujj));
  }
  for (let i = 1; i < n; i++) memory.fill(a + <usize>i * ld, 0, <usize>i << 2);
}
