// Shared plumbing of the sparse GEMM kernels (spmm-nm.ts, spmm-csr.ts): the transposed, zero-padded
// copy of one K panel of X, and the transposed accumulator YT. Not exported from the module.
//
// Both sparse GEMMs are "outer product" kernels (as XNNPACK's f32-spmm): for one weight row n and every
// kept value w at column k, acc[m0..m0+w) += w · X[m0..m0+w, k], so the X operand must be contiguous along M.
// packXT writes XT[kk][lane] for one panel of KC columns, tile by tile (widths 16, then 8, then 4 lanes; M
// padded to a multiple of 4 with zeros), so a tile of 16 lanes x 256 columns (16 KB) stays in L1.
// Accumulators are kept transposed too, YT[n][Mp], and written back to Y[M,N] once at the end.

// @ts-ignore: decorator
@inline export const SPMM_KC: i32 = 256;

/** Lanes of the tile starting at lane m0 of Mp (a multiple of 4): 16 while they last, then 8, then 4. */
// @ts-ignore: decorator
@inline
export function tileWidth(Mp: i32, m0: i32): i32 {
  const left = Mp - m0;
  return left >= 16 ? 16 : left >= 8 ? 8 : 4;
}

/** Bytes of scratch f32_spmm_*_nt needs: XT for one panel (Mp x KC) and YT (N x Mp), Mp = M rounded up to 4. */
export function spmmScratchBytes(M: i32, N: i32): i32 {
  const Mp = (M + 3) & ~3;
  return (Mp * SPMM_KC + N * Mp) << 2;
}

/** XT tiles of X[0:M, k0:k0+kc] (rows of K floats): tile at lane m0 of width w is xt[m0*kc + kk*w + j]. */
export function packXT(x: usize, M: i32, K: i32, k0: i32, kc: i32, Mp: i32, xt: usize): void {
  for (let m0 = 0; m0 < Mp; ) {
    const w = tileWidth(Mp, m0);
    const tile = xt + (<usize>(m0 * kc) << 2);
    for (let j = 0; j < w; j++) {
      const m = m0 + j;
      const d = tile + (<usize>j << 2);
      const stride = <usize>w << 2;
      if (m < M) {
        const src = x + ((<usize>m * <usize>K + <usize>k0) << 2);
        for (let kk = 0; kk < kc; kk++) store<f32>(d + <usize>kk * stride, load<f32>(src + (<usize>kk << 2)));
      } else {
        for (let kk = 0; kk < kc; kk++) store<f32>(d + <usize>kk * stride, 0);
      }
    }
    m0 += w;
  }
}

/** Y[m, n] = YT[n, m] for m < M, n < N. */
export function unpackYT(yt: usize, y: usize, M: i32, N: i32, Mp: i32): void {
  for (let n = 0; n < N; n++) {
    const src = yt + (<usize>(n * Mp) << 2);
    for (let m = 0; m < M; m++) store<f32>(y + ((<usize>m * <usize>N + <usize>n) << 2), load<f32>(src + (<usize>m << 2)));
  }
}

/** Load (or zero, on the first panel) a 16/8/4-lane accumulator tile at p. */
// @ts-ignore: decorator
@inline
export function loadAcc(p: usize, first: bool, off: usize): v128 {
  return first ? f32x4.splat(0) : v128.load(p + off);
}
