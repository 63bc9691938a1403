// Dense symmetric positive-definite linear algebra for SparseGPT (src/prune/linalg.ts has the plain
// TypeScript reference): the Cholesky factor, the inverse of a lower-triangular matrix, and the product
// MᵀM of a lower-triangular M (torch.cholesky_inverse = (L⁻¹)ᵀ·L⁻¹). Storage is f32 row-major; every
// inner product accumulates in f64.
//
// Summation order — bit-identical to the TypeScript reference: every output element is ONE f64 sum whose
// terms are added one at a time in ascending k, exactly as the scalar reference loops add them (products of
// two f32 values are exact in f64, so only the additions round, and they are the same additions). SIMD
// runs across independent output elements (2 f64 lanes), never across the terms of one sum. Register tiles
// of 4 output rows/columns × 4 elements share every load; terms that are structurally zero (the zero
// triangle of a triangular factor) may be added as ±0, which leaves an f64 sum unchanged.
//
// Scratch (`work`, f32_cholesky_scratch / f32_tril_inverse_scratch bytes): the kernels never allocate.

// @ts-ignore: decorator
@inline
function align16(p: usize): usize {
  return (p + 15) & ~(<usize>15);
}

// @ts-ignore: decorator
@inline
function lo2(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p));
}

// @ts-ignore: decorator
@inline
function hi2(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p, 8));
}

/** Bytes of scratch f32_cholesky_lower needs for width n. */
export function f32_cholesky_scratch(n: i32): usize {
  const nn = <usize>n;
  return align16(nn * nn * 4) + nn * 4 * 8 + nn * 4 * 8 + 32;
}

/**
 * In place: A (n×n, symmetric, only the lower triangle read) becomes L (lower, A = L·Lᵀ, strict upper
 * triangle zeroed), or with upper = 1 becomes U = Lᵀ (upper, A = Uᵀ·U, strict lower zeroed). Returns 0
 * (A untouched) when A is not numerically positive definite. Left-looking by blocks of 4 columns; the
 * factor is kept column-major in the scratch (T[k·n + i] = L[i, k]) so every inner loop streams.
 */
export function f32_cholesky_lower(a: usize, n: i32, upper: i32, work: usize): i32 {
  assert(n >= 0);
  const nB = <usize>n << 2;
  const T = work;
  const P = align16(T + <usize>n * nB); // f64 [k·4 + c] = L[j0 + c, k]
  const ACC = P + (<usize>n << 5); // f64 [c·n + i]
  for (let j = 0; j < n; j++) {
    const tj = T + <usize>j * nB;
    for (let i = j; i < n; i++) store<f32>(tj + (<usize>i << 2), load<f32>(a + <usize>i * nB + (<usize>j << 2)));
  }
  for (let j0 = 0; j0 < n; j0 += 4) {
    const jb = min(4, n - j0);
    for (let k = 0; k < j0; k++) {
      const tk = T + <usize>k * nB + (<usize>j0 << 2);
      const pk = P + (<usize>k << 5);
      for (let c = 0; c < 4; c++) store<f64>(pk + (<usize>c << 3), c < jb ? <f64>load<f32>(tk + (<usize>c << 2)) : 0);
    }
    // ACC[c, i] = A[i, j0+c] − Σ_{k<j0} L[i,k]·L[j0+c,k]   for i ≥ j0
    let i = j0;
    for (; i + 4 <= n; i += 4) {
      const z = f64x2.splat(0);
      let a0l = z, a0h = z, a1l = z, a1h = z, a2l = z, a2h = z, a3l = z, a3h = z;
      const ti = T + (<usize>i << 2);
      a0l = lo2(ti + <usize>j0 * nB); a0h = hi2(ti + <usize>j0 * nB);
      if (jb > 1) { a1l = lo2(ti + <usize>(j0 + 1) * nB); a1h = hi2(ti + <usize>(j0 + 1) * nB); }
      if (jb > 2) { a2l = lo2(ti + <usize>(j0 + 2) * nB); a2h = hi2(ti + <usize>(j0 + 2) * nB); }
      if (jb > 3) { a3l = lo2(ti + <usize>(j0 + 3) * nB); a3h = hi2(ti + <usize>(j0 + 3) * nB); }
      let x = ti;
      let p = P;
      for (let k = 0; k < j0; k++) {
        const xl = lo2(x);
        const xh = hi2(x);
        const s0 = v128.load64_splat(p);
        a0l = f64x2.sub(a0l, f64x2.mul(xl, s0)); a0h = f64x2.sub(a0h, f64x2.mul(xh, s0));
        const s1 = v128.load64_splat(p, 8);
        a1l = f64x2.sub(a1l, f64x2.mul(xl, s1)); a1h = f64x2.sub(a1h, f64x2.mul(xh, s1));
        const s2 = v128.load64_splat(p, 16);
        a2l = f64x2.sub(a2l, f64x2.mul(xl, s2)); a2h = f64x2.sub(a2h, f64x2.mul(xh, s2));
        const s3 = v128.load64_splat(p, 24);
        a3l = f64x2.sub(a3l, f64x2.mul(xl, s3)); a3h = f64x2.sub(a3h, f64x2.mul(xh, s3));
        x += nB;
        p += 32;
      }
      const o = ACC + (<usize>i << 3);
      const nd = <usize>n << 3;
      v128.store(o, a0l); v128.store(o, a0h, 16);
      v128.store(o + nd, a1l); v128.store(o + nd, a1h, 16);
      v128.store(o + 2 * nd, a2l); v128.store(o + 2 * nd, a2h, 16);
      v128.store(o + 3 * nd, a3l); v128.store(o + 3 * nd, a3h, 16);
    }
    for (; i < n; i++) {
      for (let c = 0; c < jb; c++) {
        let s = <f64>load<f32>(T + <usize>(j0 + c) * nB + (<usize>i << 2));
        for (let k = 0; k < j0; k++) s -= <f64>load<f32>(T + <usize>k * nB + (<usize>i << 2)) * load<f64>(P + (<usize>k << 5) + (<usize>c << 3));
        store<f64>(ACC + ((<usize>c * <usize>n + <usize>i) << 3), s);
      }
    }
    // the block's own columns, in order
    for (let c = 0; c < jb; c++) {
      const j = j0 + c;
      const acc = ACC + ((<usize>c * <usize>n) << 3);
      for (let k = j0; k < j; k++) {
        const tk = T + <usize>k * nB;
        const ljk = <f64>load<f32>(tk + (<usize>j << 2));
        for (let r = j; r < n; r++) {
          const q = acc + (<usize>r << 3);
          store<f64>(q, load<f64>(q) - <f64>load<f32>(tk + (<usize>r << 2)) * ljk);
        }
      }
      const s = load<f64>(acc + (<usize>j << 3));
      if (!(s > 0)) return 0;
      const d = Math.sqrt(s);
      const tj = T + <usize>j * nB;
      store<f32>(tj + (<usize>j << 2), <f32>d);
      for (let r = j + 1; r < n; r++) store<f32>(tj + (<usize>r << 2), <f32>(load<f64>(acc + (<usize>r << 3)) / d));
    }
  }
  for (let r = 0; r < n; r++) {
    const ar = a + <usize>r * nB;
    if (upper) {
      // U[r, j] = L[j, r] = T[r, j]
      const tr = T + <usize>r * nB;
      for (let j = 0; j < r; j++) store<f32>(ar + (<usize>j << 2), 0);
      for (let j = r; j < n; j++) store<f32>(ar + (<usize>j << 2), load<f32>(tr + (<usize>j << 2)));
    } else {
      for (let j = 0; j <= r; j++) store<f32>(ar + (<usize>j << 2), load<f32>(T + <usize>j * nB + (<usize>r << 2)));
      for (let j = r + 1; j < n; j++) store<f32>(ar + (<usize>j << 2), 0);
    }
  }
  return 1;
}

/** Bytes of scratch f32_tril_inverse needs for width n. */
export function f32_tril_inverse_scratch(n: i32): usize {
  const nn = <usize>n;
  return nn * nn * 8 + nn * 4 * 8 + nn * 4 * 8 + 32;
}

/**
 * In place: L (n×n lower triangular, nonzero diagonal) becomes L⁻¹ (lower; strict upper triangle zeroed).
 * Rows of X = L⁻¹ are solved in order, kept in f64 in the scratch (the reference keeps its columns in f64):
 * X[i, j] = −(Σ_{k=j}^{i−1} L[i,k]·X[k,j]) / L[i,i], X[i,i] = 1 / L[i,i]; rows in blocks of 4 share the
 * terms k below the block.
 */
export function f32_tril_inverse(l: usize, n: i32, work: usize): void {
  assert(n >= 0);
  const nB = <usize>n << 2;
  const nD = <usize>n << 3;
  const X = align16(work); // f64 [i·n + j]
  const P = X + <usize>n * nD; // f64 [k·4 + r] = L[i0 + r, k]
  const ACC = P + (<usize>n << 5); // f64 [r·n + j]
  for (let i0 = 0; i0 < n; i0 += 4) {
    const ib = min(4, n - i0);
    for (let k = 0; k < i0; k++) {
      const pk = P + (<usize>k << 5);
      for (let r = 0; r < 4; r++) store<f64>(pk + (<usize>r << 3), r < ib ? <f64>load<f32>(l + <usize>(i0 + r) * nB + (<usize>k << 2)) : 0);
    }
    // ACC[r, j] = Σ_{k=j}^{i0−1} L[i0+r, k]·X[k, j] for j < i0 (i0 is a multiple of 4: whole tiles)
    for (let j0 = 0; j0 < i0; j0 += 4) {
      const z = f64x2.splat(0);
      let a0l = z, a0h = z, a1l = z, a1h = z, a2l = z, a2h = z, a3l = z, a3h = z;
      let x = X + <usize>j0 * nD + (<usize>j0 << 3);
      let p = P + (<usize>j0 << 5);
      for (let k = j0; k < i0; k++) {
        const xl = v128.load(x);
        const xh = v128.load(x, 16);
        const s0 = v128.load64_splat(p);
        a0l = f64x2.add(a0l, f64x2.mul(s0, xl)); a0h = f64x2.add(a0h, f64x2.mul(s0, xh));
        const s1 = v128.load64_splat(p, 8);
        a1l = f64x2.add(a1l, f64x2.mul(s1, xl)); a1h = f64x2.add(a1h, f64x2.mul(s1, xh));
        const s2 = v128.load64_splat(p, 16);
        a2l = f64x2.add(a2l, f64x2.mul(s2, xl)); a2h = f64x2.add(a2h, f64x2.mul(s2, xh));
        const s3 = v128.load64_splat(p, 24);
        a3l = f64x2.add(a3l, f64x2.mul(s3, xl)); a3h = f64x2.add(a3h, f64x2.mul(s3, xh));
        x += nD;
        p += 32;
      }
      const o = ACC + (<usize>j0 << 3);
      v128.store(o, a0l); v128.store(o, a0h, 16);
      v128.store(o + nD, a1l); v128.store(o + nD, a1h, 16);
      v128.store(o + 2 * nD, a2l); v128.store(o + 2 * nD, a2h, 16);
      v128.store(o + 3 * nD, a3l); v128.store(o + 3 * nD, a3h, 16);
    }
    for (let r = 0; r < ib; r++) {
      const i = i0 + r;
      const acc = ACC + <usize>r * nD;
      const li = l + <usize>i * nB;
      for (let j = i0; j < i; j++) store<f64>(acc + (<usize>j << 3), 0);
      for (let k = i0; k < i; k++) {
        const lik = <f64>load<f32>(li + (<usize>k << 2));
        const xk = X + <usize>k * nD;
        for (let j = 0; j <= k; j++) {
          const q = acc + (<usize>j << 3);
          store<f64>(q, load<f64>(q) + lik * load<f64>(xk + (<usize>j << 3)));
        }
      }
      const lii = <f64>load<f32>(li + (<usize>i << 2));
      const xi = X + <usize>i * nD;
      for (let j = 0; j < i; j++) store<f64>(xi + (<usize>j << 3), -load<f64>(acc + (<usize>j << 3)) / lii);
      store<f64>(xi + (<usize>i << 3), 1 / lii);
      for (let j = i + 1; j < n; j++) store<f64>(xi + (<usize>j << 3), 0);
    }
  }
  for (let i = 0; i < n; i++) {
    const li = l + <usize>i * nB;
    const xi = X + <usize>i * nD;
    for (let j = 0; j <= i; j++) store<f32>(li + (<usize>j << 2), <f32>load<f64>(xi + (<usize>j << 3)));
    for (let j = i + 1; j < n; j++) store<f32>(li + (<usize>j << 2), 0);
  }
}

/** Bytes of scratch f32_tril_gram needs for width n. */
export function f32_tril_gram_scratch(n: i32): usize {
  return <usize>n * 4 * 8 + 32;
}

/**
 * out[i, j] = out[j, i] = Σ_{k=j}^{n−1} M[k, i]·M[k, j] (i ≤ j) for M (n×n) lower triangular with a zero
 * strict upper triangle: out = MᵀM. Rows [i0, i1) of the upper triangle only (and their mirror images), so
 * threads may split the rows; i0 must be a multiple of 4.
 */
export function f32_tril_gram_rows(m: usize, n: i32, out: usize, i0: i32, i1: i32, work: usize): void {
  assert(0 <= i0 && i0 <= i1 && i1 <= n && (i0 & 3) == 0);
  const nB = <usize>n << 2;
  const P = align16(work); // f64 [k·4 + r] = M[k, ib0 + r]
  for (let ib0 = i0; ib0 < i1; ib0 += 4) {
    const ib = min(4, i1 - ib0);
    for (let k = ib0; k < n; k++) {
      const pk = P + (<usize>k << 5);
      const mk = m + <usize>k * nB;
      for (let r = 0; r < 4; r++) store<f64>(pk + (<usize>r << 3), r < ib ? <f64>load<f32>(mk + (<usize>(ib0 + r) << 2)) : 0);
    }
    let j0 = ib0;
    for (; j0 + 4 <= n; j0 += 4) {
      const z = f64x2.splat(0);
      let a0l = z, a0h = z, a1l = z, a1h = z, a2l = z, a2h = z, a3l = z, a3h = z;
      let x = m + <usize>j0 * nB + (<usize>j0 << 2);
      let p = P + (<usize>j0 << 5);
      for (let k = j0; k < n; k++) {
        const xl = lo2(x);
        const xh = hi2(x);
        const s0 = v128.load64_splat(p);
        a0l = f64x2.add(a0l, f64x2.mul(s0, xl)); a0h = f64x2.add(a0h, f64x2.mul(s0, xh));
        const s1 = v128.load64_splat(p, 8);
        a1l = f64x2.add(a1l, f64x2.mul(s1, xl)); a1h = f64x2.add(a1h, f64x2.mul(s1, xh));
        const s2 = v128.load64_splat(p, 16);
        a2l = f64x2.add(a2l, f64x2.mul(s2, xl)); a2h = f64x2.add(a2h, f64x2.mul(s2, xh));
        const s3 = v128.load64_splat(p, 24);
        a3l = f64x2.add(a3l, f64x2.mul(s3, xl)); a3h = f64x2.add(a3h, f64x2.mul(s3, xh));
        x += nB;
        p += 32;
      }
      storeSym(out, n, ib0, j0, ib, a0l, a0h, 0);
      storeSym(out, n, ib0, j0, ib, a1l, a1h, 1);
      storeSym(out, n, ib0, j0, ib, a2l, a2h, 2);
      storeSym(out, n, ib0, j0, ib, a3l, a3h, 3);
    }
    for (let r = 0; r < ib; r++) {
      const i = ib0 + r;
      for (let j = max(j0, i); j < n; j++) {
        let s: f64 = 0;
        for (let k = j; k < n; k++) {
          const mk = m + <usize>k * nB;
          s += <f64>load<f32>(mk + (<usize>i << 2)) * <f64>load<f32>(mk + (<usize>j << 2));
        }
        store<f32>(out + <usize>i * nB + (<usize>j << 2), <f32>s);
        store<f32>(out + <usize>j * nB + (<usize>i << 2), <f32>s);
      }
    }
  }
}

// @ts-ignore: decorator
@inline
function storeSym(out: usize, n: i32, ib0: i32, j0: i32, ib: i32, vl: v128, vh: v128, r: i32): void {
  if (r >= ib) return;
  const i = ib0 + r;
  const nB = <usize>n << 2;
  for (let c = 0; c < 4; c++) {
    const j = j0 + c;
    if (j < i) continue;
    const v = <f32>(c == 0 ? f64x2.extract_lane(vl, 0) : c == 1 ? f64x2.extract_lane(vl, 1) : c == 2 ? f64x2.extract_lane(vh, 0) : f64x2.extract_lane(vh, 1));
    store<f32>(out + <usize>i * nB + (<usize>j << 2), v);
    store<f32>(out + <usize>j * nB + (<usize>i << 2), v);
  }
}
