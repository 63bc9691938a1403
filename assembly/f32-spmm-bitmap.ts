// f32 unstructured sparse GEMV and GEMM on "panel bitmap": the panel CSR of f32-spmm-csr.ts with the u8 column
// offsets replaced by a bitmask. Measured against panel CSR to choose the unstructured format (see the comment
// at the top of f32-spmm-csr.ts); not used by the forward pass.
//
//   rowptr u32 [P·N + 1]   as panel CSR: nonzeros of (panel p, row n) are [rowptr[p·N+n], rowptr[p·N+n+1])
//   mask   u8  [N][K/8]    bit (k & 7) of byte k >> 3 of row n set where W[n,k] is stored (K % 8 == 0)
//   vals   f32 [nnz + 4]   as panel CSR (4 floats of padding: the GEMV loads 4 values at a time)
//
// GEMV: per 4 columns, one contiguous load of x, one (unaligned) load of the next 4 values and one swizzle
// that routes value r to the lane of the r-th set bit of the nibble (zero elsewhere): no gathers, but work per
// column, not per nonzero. GEMM: per set bit, the column from count-trailing-zeros, then the outer-product
// step of f32-spmm-csr.ts.
import { SPMM_KC, tileWidth, packXT, unpackYT, loadAcc } from "./f32-spmm-common";

/** Swizzle masks by nibble: lane i takes bytes of value rank(i) when bit i is set, else 0x80 (zero). */
const NIBBLE_SWZ = memory.data<u8>([
  0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
  0, 1, 2, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
  0x80, 0x80, 0x80, 0x80, 0, 1, 2, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
  0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
  0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0, 1, 2, 3, 0x80, 0x80, 0x80, 0x80,
  0, 1, 2, 3, 0x80, 0x80, 0x80, 0x80, 4, 5, 6, 7, 0x80, 0x80, 0x80, 0x80,
  0x80, 0x80, 0x80, 0x80, 0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0x80, 0x80, 0x80,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x80, 0x80, 0x80, 0x80,
  0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0, 1, 2, 3,
  0, 1, 2, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 4, 5, 6, 7,
  0x80, 0x80, 0x80, 0x80, 0, 1, 2, 3, 0x80, 0x80, 0x80, 0x80, 4, 5, 6, 7,
  0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0x80, 0x80, 0x80, 8, 9, 10, 11,
  0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0, 1, 2, 3, 4, 5, 6, 7,
  0, 1, 2, 3, 0x80, 0x80, 0x80, 0x80, 4, 5, 6, 7, 8, 9, 10, 11,
  0x80, 0x80, 0x80, 0x80, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
], 16);

/** y[N] = W·x for W [N,K] in panel bitmap (K % 8 == 0; x, y, vals, rowptr 4-aligned). */
export function f32_spmv_bitmap(rowptr: usize, mask: usize, vals: usize, x: usize, y: usize, N: i32, K: i32): void {
  assert(N >= 0 && K >= 0 && (K & 7) == 0, "f32_spmv_bitmap: bad size");
  assert(((rowptr | vals | x | y) & 3) == 0, "f32_spmv_bitmap: misaligned pointer");
  const rowBytes = <usize>(K >> 3);
  if (K == 0) {
    memory.fill(y, 0, <usize>N << 2);
    return;
  }
  for (let k0 = 0, p = 0; k0 < K; k0 += SPMM_KC, p++) {
    const nb = <usize>(min(SPMM_KC, K - k0) >> 3);
    const xp = x + (<usize>k0 << 2);
    const rp = rowptr + (<usize>(p * N) << 2);
    for (let n = 0; n < N; n++) {
      let j = <usize>load<u32>(rp + (<usize>n << 2));
      const mp = mask + <usize>n * rowBytes + (<usize>k0 >> 3);
      let vacc0 = f32x4.splat(0);
      let vacc1 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const m = <u32>load<u8>(mp + b);
        if (m == 0) continue;
        const lo = m & 15;
        const hi = m >> 4;
        const xb = xp + (b << 5);
        const v0 = i8x16.swizzle(v128.load(vals + (j << 2)), v128.load(NIBBLE_SWZ + (<usize>lo << 4)));
        j += <usize>popcnt(lo);
        const v1 = i8x16.swizzle(v128.load(vals + (j << 2)), v128.load(NIBBLE_SWZ + (<usize>hi << 4)));
        j += <usize>popcnt(hi);
        vacc0 = f32x4.add(vacc0, f32x4.mul(v128.load(xb), v0));
        vacc1 = f32x4.add(vacc1, f32x4.mul(v128.load(xb, 16), v1));
      }
      const vsum = f32x4.add(vacc0, vacc1);
      const s: f32 = (f32x4.extract_lane(vsum, 0) + f32x4.extract_lane(vsum, 1)) + (f32x4.extract_lane(vsum, 2) + f32x4.extract_lane(vsum, 3));
      const yp = y + (<usize>n << 2);
      store<f32>(yp, p == 0 ? s : load<f32>(yp) + s);
    }
  }
}

function brow16(j: usize, mp: usize, nb: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  let vacc4567 = loadAcc(ytp, first, 16);
  let vacc89AB = loadAcc(ytp, first, 32);
  let vaccCDEF = loadAcc(ytp, first, 48);
  for (let b: usize = 0; b < nb; b++) {
    for (let m = <u32>load<u8>(mp + b); m != 0; m &= m - 1) {
      const p = xt + ((((b << 3) | <usize>ctz(m))) << 6);
      const vw = v128.load32_splat(vals + (j << 2));
      j++;
      vacc0123 = f32x4.add(vacc0123, f32x4.mul(vw, v128.load(p)));
      vacc4567 = f32x4.add(vacc4567, f32x4.mul(vw, v128.load(p, 16)));
      vacc89AB = f32x4.add(vacc89AB, f32x4.mul(vw, v128.load(p, 32)));
      vaccCDEF = f32x4.add(vaccCDEF, f32x4.mul(vw, v128.load(p, 48)));
    }
  }
  v128.store(ytp, vacc0123);
  v128.store(ytp, vacc4567, 16);
  v128.store(ytp, vacc89AB, 32);
  v128.store(ytp, vaccCDEF, 48);
}

function brow8(j: usize, mp: usize, nb: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  let vacc4567 = loadAcc(ytp, first, 16);
  for (let b: usize = 0; b < nb; b++) {
    for (let m = <u32>load<u8>(mp + b); m != 0; m &= m - 1) {
      const p = xt + ((((b << 3) | <usize>ctz(m))) << 5);
      const vw = v128.load32_splat(vals + (j << 2));
      j++;
      vacc0123 = f32x4.add(vacc0123, f32x4.mul(vw, v128.load(p)));
      vacc4567 = f32x4.add(vacc4567, f32x4.mul(vw, v128.load(p, 16)));
    }
  }
  v128.store(ytp, vacc0123);
  v128.store(ytp, vacc4567, 16);
}

function brow4(j: usize, mp: usize, nb: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  for (let b: usize = 0; b < nb; b++) {
    for (let m = <u32>load<u8>(mp + b); m != 0; m &= m - 1) {
      const vw = v128.load32_splat(vals + (j << 2));
      j++;
      vacc0123 = f32x4.add(vacc0123, f32x4.mul(vw, v128.load(xt + ((((b << 3) | <usize>ctz(m))) << 4))));
    }
  }
  v128.store(ytp, vacc0123);
}

/** Y[M,N] = X[M,K] · Wᵀ for W [N,K] in panel bitmap. `scratch`: f32_spmm_nt_scratch(M,N,K) bytes, 16-aligned. */
export function f32_spmm_bitmap_nt(x: usize, rowptr: usize, mask: usize, vals: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  assert(M >= 0 && N >= 0 && K >= 0 && (K & 7) == 0, "f32_spmm_bitmap_nt: bad size");
  assert((scratch & 15) == 0 && ((rowptr | vals | x | y) & 3) == 0, "f32_spmm_bitmap_nt: misaligned pointer");
  if (M == 0 || N == 0) return;
  if (K == 0) {
    memory.fill(y, 0, (<usize>M * <usize>N) << 2);
    return;
  }
  const rowBytes = <usize>(K >> 3);
  const Mp = (M + 3) & ~3;
  const xt = scratch;
  const yt = scratch + (<usize>(Mp * SPMM_KC) << 2);
  for (let k0 = 0, p = 0; k0 < K; k0 += SPMM_KC, p++) {
    const kc = min(SPMM_KC, K - k0);
    const nb = <usize>(kc >> 3);
    const first = k0 == 0;
    packXT(x, M, K, k0, kc, Mp, xt);
    const rp = rowptr + (<usize>(p * N) << 2);
    for (let n0 = 0; n0 < N; n0 += 512) { // row chunks as f32_spmm_bcsr_nt's NC
      const n1 = min(N, n0 + 512);
      for (let m0 = 0; m0 < Mp; ) {
        const w = tileWidth(Mp, m0);
        const xtt = xt + (<usize>(m0 * kc) << 2);
        for (let n = n0; n < n1; n++) {
          const j = <usize>load<u32>(rp + (<usize>n << 2));
          const mp = mask + <usize>n * rowBytes + (<usize>k0 >> 3);
          const ytp = yt + (<usize>(n * Mp + m0) << 2);
          if (w == 16) brow16(j, mp, nb, vals, xtt, ytp, first);
          else if (w == 8) brow8(j, mp, nb, vals, xtt, ytp, first);
          else brow4(j, mp, nb, vals, xtt, ytp, first);
        }
        m0 += w;
      }
    }
  }
  unpackYT(yt, y, M, N, Mp);
}
