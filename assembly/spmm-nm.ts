// f32 2:4 sparse GEMV and GEMM, "4x" layout: weight rows interleaved in blocks of 4 (src/sparse/nm.ts packs
// and unpacks it; the file format on disk is compressed-tensors' sparse-24-bitmask, see README).
//
// Layout of W [N, K] (K a multiple of 4; N padded to NB = ceil(N/4) blocks of 4 rows, padding rows all zero):
//   vals f32 [NB][G = K/4][2][4]: vals[b][g][s][r] = the s-th kept value (s = 0: lower column) of row 4b+r
//                                 in group g (columns 4g..4g+3)
//   idx  u8  [NB][G][2]:          idx[b][g][s] bits 2r..2r+1 = column (0..3) inside the group of that value
// So one group of one block is 32 bytes of values + 2 bytes of indices: 2.06 bits of index per... i.e. f32
// values + 2-bit indices, 1.88x fewer bytes than dense f32.
//
// GEMV (decode): lane r of an accumulator is row 4b+r. Each index byte is turned into an i8x16.swizzle mask
// by a 256-entry table (4 KB, L1-resident), so ONE swizzle of x[4g..4g+3] gathers the s-th input of all 4
// rows at once: vacc_s += swizzle(x_g, mask[idx[b][g][s]]) * vals[b][g][s]. A row-by-row kernel gathering
// inputs per row measured no faster than dense (the scalar gathers cap it near 10 GB/s).
//
// GEMM (prefill, "nt": Y[M,N] = X[M,K]·Wᵀ): compute-bound, so the kernel must do half the FP work of dense
// with little overhead: per kept value, one load32_splat of the weight and 4/2/1 loads of XT (X transposed,
// one 256-column panel in L1, see spmm-common.ts) at a row picked by the 2-bit index, then mul + add on
// 16/8/4 lanes of M. That is the dense micro-kernel's FP work per MAC (1 mul + 1 add per lane), at half the
// MACs; the extra cost is one scalar shift/and per value.
//
// Half-precision values (bf16_* / f16_* kernels, the same indices): vals u16 [NB][G][4][2], i.e. per group the
// pairs (s0, s1) of rows 0..3, so one 16-byte load widens to the s = 0 values of the 4 rows (even elements)
// and the s = 1 values (odd elements); the GEMM reads row r's pair as one u32. 18 bytes per 4x4 group instead
// of 64 dense f32: 3.56x fewer bytes. The kernels are generic over the value type (assembly/simd.ts markers).
//
// Summation order (deterministic): GEMV lane r: Σ_g s=0 terms and Σ_g s=1 terms separately, then added.
// GEMM: per output, panels in order; inside a panel groups in order, s = 0 then s = 1.
import { SPMM_KC, tileWidth, spmmScratchBytes, packXT, unpackYT, loadAcc } from "./spmm-common";
import { madd, swizzleInRange, halfEven, halfOdd, loadWeight } from "./simd";
import { SWZ_TABLE } from "./tables";

export * from "./spmm-csr";

/** Swizzle masks: SWZ[byte] (16 bytes) selects, for lane r, the 4 bytes of float ((byte >> 2r) & 3) of a v128 (assembly/tables.ts). */
const SWZ = SWZ_TABLE;

/** Bytes of scratch f32_spmm_2of4_4x_nt (and f32_spmm_bcsr_nt) need for these sizes. */
export function f32_spmm_nt_scratch(M: i32, N: i32, K: i32): i32 {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_spmm_nt_scratch: negative size");
  return spmmScratchBytes(M, N);
}

/** The s = 0 and s = 1 values of the 4 rows of the group at vp (f32: 32 bytes; half: 16). */
// @ts-ignore: decorator
@inline
function vals0<D>(vp: usize): v128 {
  if (isFloat<D>()) return v128.load(vp);
  return halfEven<D>(v128.load(vp));
}

// @ts-ignore: decorator
@inline
function vals1<D>(vp: usize): v128 {
  if (isFloat<D>()) return v128.load(vp, 16);
  return halfOdd<D>(v128.load(vp));
}

/** Bytes of the values of one group of one block (8 values). */
// @ts-ignore: decorator
@inline
function groupBytes<D>(): usize {
  return <usize>sizeof<D>() << 3;
}

function spmv2of4<D>(vals: usize, idx: usize, x: usize, y: usize, N: i32, K: i32): void {
  assert(N >= 0 && K >= 0 && (K & 3) == 0, "spmv_2of4_4x: K must be a non-negative multiple of 4");
  assert((vals & 15) == 0 && (idx & 1) == 0 && ((x | y) & 3) == 0, "spmv_2of4_4x: misaligned pointer");
  const G = K >> 2;
  const NB = (N + 3) >> 2;
  const gb = groupBytes<D>();
  const blockVals = <usize>G * gb;
  const blockIdx = <usize>G << 1;
  let b = 0;
  // Two blocks (8 rows) per step: one x load serves both.
  for (; b + 2 <= NB; b += 2) {
    let vp = vals + <usize>b * blockVals;
    let ip = idx + <usize>b * blockIdx;
    let vaccA0 = f32x4.splat(0);
    let vaccA1 = f32x4.splat(0);
    let vaccB0 = f32x4.splat(0);
    let vaccB1 = f32x4.splat(0);
    // two groups a step: one u32 of indices per block serves both (4 masks), then an odd last group alone
    const x2end = x + (<usize>(G & ~1) << 4);
    const xend = x + (<usize>G << 4);
    let xp = x;
    for (; xp < x2end; xp += 32) {
      const vx0123 = v128.load(xp);
      const vx4567 = v128.load(xp, 16);
      const qa = <usize>load<u32>(ip);
      const qb = <usize>load<u32>(ip + blockIdx);
      const vq = vp + blockVals;
      const vp1 = vp + gb;
      const vq1 = vq + gb;
      vaccA0 = madd(swizzleInRange(vx0123, v128.load(((qa & 255) << 4), SWZ)), vals0<D>(vp), vaccA0);
      vaccA1 = madd(swizzleInRange(vx0123, v128.load(((qa >> 4) & 0xff0), SWZ)), vals1<D>(vp), vaccA1);
      vaccB0 = madd(swizzleInRange(vx0123, v128.load(((qb & 255) << 4), SWZ)), vals0<D>(vq), vaccB0);
      vaccB1 = madd(swizzleInRange(vx0123, v128.load(((qb >> 4) & 0xff0), SWZ)), vals1<D>(vq), vaccB1);
      vaccA0 = madd(swizzleInRange(vx4567, v128.load(((qa >> 12) & 0xff0), SWZ)), vals0<D>(vp1), vaccA0);
      vaccA1 = madd(swizzleInRange(vx4567, v128.load(((qa >> 20) & 0xff0), SWZ)), vals1<D>(vp1), vaccA1);
      vaccB0 = madd(swizzleInRange(vx4567, v128.load(((qb >> 12) & 0xff0), SWZ)), vals0<D>(vq1), vaccB0);
      vaccB1 = madd(swizzleInRange(vx4567, v128.load(((qb >> 20) & 0xff0), SWZ)), vals1<D>(vq1), vaccB1);
      vp += gb << 1;
      ip += 4;
    }
    if (xp < xend) {
      const vx0123 = v128.load(xp);
      let pair = <usize>load<u16>(ip);
      vaccA0 = madd(swizzleInRange(vx0123, v128.load(((pair & 255) << 4), SWZ)), vals0<D>(vp), vaccA0);
      vaccA1 = madd(swizzleInRange(vx0123, v128.load(((pair >> 8) << 4), SWZ)), vals1<D>(vp), vaccA1);
      pair = <usize>load<u16>(ip + blockIdx);
      vaccB0 = madd(swizzleInRange(vx0123, v128.load(((pair & 255) << 4), SWZ)), vals0<D>(vp + blockVals), vaccB0);
      vaccB1 = madd(swizzleInRange(vx0123, v128.load(((pair >> 8) << 4), SWZ)), vals1<D>(vp + blockVals), vaccB1);
    }
    storeRows(y, b << 2, N, f32x4.add(vaccA0, vaccA1));
    storeRows(y, (b << 2) + 4, N, f32x4.add(vaccB0, vaccB1));
  }
  for (; b < NB; b++) {
    let vp = vals + <usize>b * blockVals;
    let ip = idx + <usize>b * blockIdx;
    let vacc0_0123 = f32x4.splat(0);
    let vacc1_0123 = f32x4.splat(0);
    const xend = x + (<usize>G << 4);
    for (let xp = x; xp < xend; xp += 16) {
      const vx0123 = v128.load(xp);
      const pair = <usize>load<u16>(ip);
      vacc0_0123 = madd(swizzleInRange(vx0123, v128.load(((pair & 255) << 4), SWZ)), vals0<D>(vp), vacc0_0123);
      vacc1_0123 = madd(swizzleInRange(vx0123, v128.load(((pair >> 8) << 4), SWZ)), vals1<D>(vp), vacc1_0123);
      vp += gb;
      ip += 2;
    }
    storeRows(y, b << 2, N, f32x4.add(vacc0_0123, vacc1_0123));
  }
}

/** y[N] = W·x for a 2:4 W [N,K] in the 4x layout (vals 16-aligned, idx 2-aligned, x and y 4-aligned). */
export function f32_spmv_2of4_4x(vals: usize, idx: usize, x: usize, y: usize, N: i32, K: i32): void {
  spmv2of4<f32>(vals, idx, x, y, N, K);
}

/** f32_spmv_2of4_4x with bf16 values (half layout), f32 accumulation. */
export function bf16_spmv_2of4_4x(vals: usize, idx: usize, x: usize, y: usize, N: i32, K: i32): void {
  spmv2of4<u16>(vals, idx, x, y, N, K);
}

/** f32_spmv_2of4_4x with f16 values (half layout), f32 accumulation. */
export function f16_spmv_2of4_4x(vals: usize, idx: usize, x: usize, y: usize, N: i32, K: i32): void {
  spmv2of4<i16>(vals, idx, x, y, N, K);
}

/** y[n..n+4) = lanes of vy0123, only rows < N. */
// @ts-ignore: decorator
@inline
function storeRows(y: usize, n: i32, N: i32, vy0123: v128): void {
  const yp = y + (<usize>n << 2);
  if (n + 4 <= N) {
    v128.store(yp, vy0123);
  } else {
    store<f32>(yp, f32x4.extract_lane(vy0123, 0));
    if (n + 1 < N) store<f32>(yp, f32x4.extract_lane(vy0123, 1), 4);
    if (n + 2 < N) store<f32>(yp, f32x4.extract_lane(vy0123, 2), 8);
  }
}

/** Row r's s = 0 / s = 1 value of a group, splat (vp: the group's values + 4r; f32 [2][4], half [4][2]). */
// @ts-ignore: decorator
@inline
function splatW0<D>(vp: usize): v128 {
  if (isFloat<D>()) return v128.load32_splat(vp);
  return f32x4.splat(loadWeight<D>(vp));
}

// @ts-ignore: decorator
@inline
function splatW1<D>(vp: usize): v128 {
  if (isFloat<D>()) return v128.load32_splat(vp, 16);
  return f32x4.splat(loadWeight<D>(vp + 2));
}

/** One row (column `r` of a 4x block) against a 16-lane XT tile over gc groups; acc tile at ytp. */
function row16<D>(vp: usize, ip: usize, sh: u32, gc: i32, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  let vacc4567 = loadAcc(ytp, first, 16);
  let vacc89AB = loadAcc(ytp, first, 32);
  let vaccCDEF = loadAcc(ytp, first, 48);
  const gb = groupBytes<D>();
  for (let g = 0; g < gc; g++) {
    const a = <usize>(<u32>load<u16>(ip) >> sh);
    const p0 = xt + ((a & 3) << 6);
    const p1 = xt + (((a >> 8) & 3) << 6);
    const vw0 = splatW0<D>(vp);
    const vw1 = splatW1<D>(vp);
    vacc0123 = madd(vw0, v128.load(p0), vacc0123);
    vacc4567 = madd(vw0, v128.load(p0, 16), vacc4567);
    vacc89AB = madd(vw0, v128.load(p0, 32), vacc89AB);
    vaccCDEF = madd(vw0, v128.load(p0, 48), vaccCDEF);
    vacc0123 = madd(vw1, v128.load(p1), vacc0123);
    vacc4567 = madd(vw1, v128.load(p1, 16), vacc4567);
    vacc89AB = madd(vw1, v128.load(p1, 32), vacc89AB);
    vaccCDEF = madd(vw1, v128.load(p1, 48), vaccCDEF);
    ip += 2;
    vp += gb;
    xt += 256;
  }
  v128.store(ytp, vacc0123);
  v128.store(ytp, vacc4567, 16);
  v128.store(ytp, vacc89AB, 32);
  v128.store(ytp, vaccCDEF, 48);
}

function row8<D>(vp: usize, ip: usize, sh: u32, gc: i32, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  let vacc4567 = loadAcc(ytp, first, 16);
  const gb = groupBytes<D>();
  for (let g = 0; g < gc; g++) {
    const a = <usize>(<u32>load<u16>(ip) >> sh);
    const p0 = xt + ((a & 3) << 5);
    const p1 = xt + (((a >> 8) & 3) << 5);
    const vw0 = splatW0<D>(vp);
    const vw1 = splatW1<D>(vp);
    vacc0123 = madd(vw0, v128.load(p0), vacc0123);
    vacc4567 = madd(vw0, v128.load(p0, 16), vacc4567);
    vacc0123 = madd(vw1, v128.load(p1), vacc0123);
    vacc4567 = madd(vw1, v128.load(p1, 16), vacc4567);
    ip += 2;
    vp += gb;
    xt += 128;
  }
  v128.store(ytp, vacc0123);
  v128.store(ytp, vacc4567, 16);
}

function row4<D>(vp: usize, ip: usize, sh: u32, gc: i32, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  const gb = groupBytes<D>();
  for (let g = 0; g < gc; g++) {
    const a = <usize>(<u32>load<u16>(ip) >> sh);
    vacc0123 = madd(splatW0<D>(vp), v128.load(xt + ((a & 3) << 4)), vacc0123);
    vacc0123 = madd(splatW1<D>(vp), v128.load(xt + (((a >> 8) & 3) << 4)), vacc0123);
    ip += 2;
    vp += gb;
    xt += 64;
  }
  v128.store(ytp, vacc0123);
}

/** Rows per N chunk of the GEMM: 512 rows x 256 columns of a 2:4 panel is 272 KB, L2-resident across M tiles. */
// @ts-ignore: decorator
@inline const NCB: i32 = 128;

function spmm2of4<D>(x: usize, vals: usize, idx: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  assert(M >= 0 && N >= 0 && K >= 0 && (K & 3) == 0, "spmm_2of4_4x_nt: K must be a non-negative multiple of 4");
  assert((vals & 15) == 0 && (scratch & 15) == 0 && (idx & 1) == 0 && ((x | y) & 3) == 0, "spmm_2of4_4x_nt: misaligned pointer");
  if (M == 0 || N == 0) return;
  if (K == 0) {
    memory.fill(y, 0, (<usize>M * <usize>N) << 2);
    return;
  }
  const G = K >> 2;
  const NB = (N + 3) >> 2;
  const Mp = (M + 3) & ~3;
  const xt = scratch;
  const yt = scratch + (<usize>(Mp * SPMM_KC) << 2);
  for (let k0 = 0; k0 < K; k0 += SPMM_KC) {
    const kc = min(SPMM_KC, K - k0);
    const gc = kc >> 2;
    const g0 = k0 >> 2;
    const first = k0 == 0;
    packXT(x, M, K, k0, kc, Mp, xt);
    for (let b0 = 0; b0 < NB; b0 += NCB) {
      const b1 = min(NB, b0 + NCB);
      for (let m0 = 0; m0 < Mp; ) {
        const w = tileWidth(Mp, m0);
        const xtt = xt + (<usize>(m0 * kc) << 2);
        for (let b = b0; b < b1; b++) {
          const vp = vals + (<usize>b * <usize>G + <usize>g0) * groupBytes<D>();
          const ip = idx + ((<usize>b * <usize>G + <usize>g0) << 1);
          for (let r = 0; r < 4; r++) {
            const n = (b << 2) + r;
            if (n >= N) break;
            const ytp = yt + (<usize>(n * Mp + m0) << 2);
            const vpr = vp + (<usize>r << 2);
            const sh = <u32>(r << 1);
            if (w == 16) row16<D>(vpr, ip, sh, gc, xtt, ytp, first);
            else if (w == 8) row8<D>(vpr, ip, sh, gc, xtt, ytp, first);
            else row4<D>(vpr, ip, sh, gc, xtt, ytp, first);
          }
        }
        m0 += w;
      }
    }
  }
  unpackYT(yt, y, M, N, Mp);
}

/** Y[M,N] = X[M,K] · Wᵀ for a 2:4 W [N,K] in the 4x layout. `scratch`: f32_spmm_nt_scratch(M,N,K) bytes, 16-aligned. */
export function f32_spmm_2of4_4x_nt(x: usize, vals: usize, idx: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  spmm2of4<f32>(x, vals, idx, y, M, N, K, scratch);
}

/** f32_spmm_2of4_4x_nt with bf16 values (half layout). */
export function bf16_spmm_2of4_4x_nt(x: usize, vals: usize, idx: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  spmm2of4<u16>(x, vals, idx, y, M, N, K, scratch);
}

/** f32_spmm_2of4_4x_nt with f16 values (half layout). */
export function f16_spmm_2of4_4x_nt(x: usize, vals: usize, idx: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  spmm2of4<i16>(x, vals, idx, y, M, N, K, scratch);
}
