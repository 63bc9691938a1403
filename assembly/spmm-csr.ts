// f32 unstructured sparse GEMV and GEMM on "panel CSR" (bcsr): K is cut into panels of 256 columns, and
// each panel is a CSR matrix over all N rows whose column indices are u8 offsets inside the panel.
//
//   rowptr u32 [P·N + 1]  nonzeros of (panel p, row n) are [rowptr[p·N+n], rowptr[p·N+n+1]); P = ceil(K/256)
//   cols   u8  [nnz]      column - 256·p
//   vals   f32 [nnz]
//
// Why this format: at 50-90% sparsity the GEMV is bound by bytes and the GEMM by per-nonzero work. Against
// plain CSR with u16/i32 columns, u8 panel offsets cut index bytes to 1 per nonzero (5 bytes/nnz: at 90%
// sparsity 0.5 B per dense weight vs 4), and the panel bounds the working set: the GEMV's x slice is 1 KB and
// the GEMM's transposed X tile (256 columns x 16 lanes) is 16 KB, both L1-resident whatever K is. A bitmap +
// values format costs about the same bytes at 90% (fewer at 50%) but turns every nonzero into a
// find-first-set/clear step, and the GEMM outer-product loop wants an address per nonzero, which the u8 offset
// gives with one shift. Blocked (dense rb x cb tiles) formats waste work at unstructured sparsity unless the
// pruning is block-aware, which wasprune's methods are not. Measured (`wasprune bench kernels`, 4096x4096,
// one thread): SpMV 3.0x dense at 90% but 0.72x at 50% (the 4-wide gathers cost more than the bytes saved);
// SpMM at batch 64: 1.7x / 2.9x / 7.7x at 50/70/90%.
// Measured against bitmap + values (the same panels and value order, a u8 mask per 8 columns instead of a u8
// offset per value; its GEMV swizzled 4 values into the set lanes of each nibble, its GEMM walked set bits with
// ctz), one thread, same weights, one run (machine shared), effective GFLOP/s, CSR vs bitmap (bitmap/CSR):
//   4096x4096 GEMV (DRAM-streamed)  50%: 3.5 vs 1.6 (0.46x)  70%: 5.9 vs 2.1 (0.36x)  90%: 13.2 vs 1.6 (0.12x)
//   4096x4096 GEMM M=8              50%: 20.1 vs 7.7 (0.38x) 70%: 36.1 vs 8.8 (0.24x) 90%: 98.1 vs 11.9 (0.12x)
//   4096x4096 GEMM M=64             50%: 28.9 vs 16.7 (0.58x) 70%: 41.7 vs 13.6 (0.33x) 90%: 164 vs 24.3 (0.15x)
//   3072x768 GEMV / GEMM M=64       50%: 0.54x / 0.43x  70%: 0.30x / 0.37x  90%: 0.10x / 0.25x
// Bitmap saves 15% of the bytes at 50% (34.2 vs 40.2 MiB at 4096²) and 12% at 70%, but its work is per column
// (GEMV) or per set bit with a serial ctz/popcount chain (GEMM), and that costs more than the bytes: panel CSR
// won at every sparsity, batch and shape, so the bitmap kernels left the module (git history has them,
// assembly/f32-spmm-bitmap.ts and bench/unstructured-format.ts) and panel CSR is the one unstructured layout.
//
// Half-precision values (bf16_* / f16_* kernels): vals u16 [nnz], the same rowptr and cols; widened in registers.
//
// Summation order (deterministic): per output, panels in order, nonzeros in stored (column) order.
import { SPMM_KC, tileWidth, packXT, unpackYT, loadAcc } from "./spmm-common";
import { madd, f16TopToF32, loadWeight } from "./simd";

/** [x[c & 255], x[(c >> 8) & 255], x[(c >> 16) & 255], x[c >> 24]] for 4 packed u8 columns c. */
// @ts-ignore: decorator
@inline
function gather4(xp: usize, c: usize): v128 {
  let v = v128.load32_zero(xp + ((c & 255) << 2));
  v = v128.load32_lane(xp + (((c >> 8) & 255) << 2), v, 1);
  v = v128.load32_lane(xp + (((c >> 16) & 255) << 2), v, 2);
  return v128.load32_lane(xp + ((c >> 24) << 2), v, 3);
}

/** 4 consecutive values at j (element index) as f32 lanes. */
// @ts-ignore: decorator
@inline
function vals4<D>(vals: usize, j: usize): v128 {
  if (isFloat<D>()) return v128.load(vals + (j << 2));
  const u = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(vals + (j << 1))), 16);
  if (isSigned<D>()) return f16TopToF32(u);
  return u;
}

/** Byte offset of value j. */
// @ts-ignore: decorator
@inline
function at<D>(j: usize): usize {
  return j * sizeof<D>();
}

function spmvBcsr<D>(rowptr: usize, cols: usize, vals: usize, x: usize, y: usize, N: i32, K: i32): void {
  assert(N >= 0 && K >= 0, "spmv_bcsr: negative size");
  assert(((rowptr | x | y) & 3) == 0 && (vals & (sizeof<D>() - 1)) == 0, "spmv_bcsr: misaligned pointer");
  const P = (K + SPMM_KC - 1) / SPMM_KC;
  if (P == 0) {
    memory.fill(y, 0, <usize>N << 2);
    return;
  }
  for (let p = 0; p < P; p++) {
    const xp = x + (<usize>(p * SPMM_KC) << 2);
    let rp = rowptr + (<usize>(p * N) << 2);
    let j = <usize>load<u32>(rp);
    for (let n = 0; n < N; n++) {
      const end = <usize>load<u32>(rp, 4);
      const yp = y + (<usize>n << 2);
      // Gathers of 4 inputs into a vector (scalar loads + replace_lane) against 4 contiguous values; two
      // accumulators over 8 nonzeros per step, then one step of 4, then a scalar tail.
      let vacc0 = f32x4.splat(0);
      let vacc1 = f32x4.splat(0);
      for (; j + 8 <= end; j += 8) {
        const c0 = <usize>load<u32>(cols + j);
        const c1 = <usize>load<u32>(cols + j, 4);
        vacc0 = madd(gather4(xp, c0), vals4<D>(vals, j), vacc0);
        vacc1 = madd(gather4(xp, c1), vals4<D>(vals, j + 4), vacc1);
      }
      if (j + 4 <= end) {
        vacc0 = madd(gather4(xp, <usize>load<u32>(cols + j)), vals4<D>(vals, j), vacc0);
        j += 4;
      }
      const vsum = f32x4.add(vacc0, vacc1);
      const s0: f32 = (f32x4.extract_lane(vsum, 0) + f32x4.extract_lane(vsum, 1)) + (f32x4.extract_lane(vsum, 2) + f32x4.extract_lane(vsum, 3));
      let s1: f32 = 0;
      for (; j < end; j++) s1 += loadWeight<D>(vals + at<D>(j)) * load<f32>(xp + (<usize>load<u8>(cols + j) << 2));
      const s = s0 + s1;
      store<f32>(yp, p == 0 ? s : load<f32>(yp) + s);
      rp += 4;
    }
  }
}

function crow16<D>(j: usize, end: usize, cols: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  let vacc4567 = loadAcc(ytp, first, 16);
  let vacc89AB = loadAcc(ytp, first, 32);
  let vaccCDEF = loadAcc(ytp, first, 48);
  for (; j < end; j++) {
    const p = xt + (<usize>load<u8>(cols + j) << 6);
    const vw = f32x4.splat(loadWeight<D>(vals + at<D>(j)));
    vacc0123 = madd(vw, v128.load(p), vacc0123);
    vacc4567 = madd(vw, v128.load(p, 16), vacc4567);
    vacc89AB = madd(vw, v128.load(p, 32), vacc89AB);
    vaccCDEF = madd(vw, v128.load(p, 48), vaccCDEF);
  }
  v128.store(ytp, vacc0123);
  v128.store(ytp, vacc4567, 16);
  v128.store(ytp, vacc89AB, 32);
  v128.store(ytp, vaccCDEF, 48);
}

function crow8<D>(j: usize, end: usize, cols: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  let vacc4567 = loadAcc(ytp, first, 16);
  for (; j < end; j++) {
    const p = xt + (<usize>load<u8>(cols + j) << 5);
    const vw = f32x4.splat(loadWeight<D>(vals + at<D>(j)));
    vacc0123 = madd(vw, v128.load(p), vacc0123);
    vacc4567 = madd(vw, v128.load(p, 16), vacc4567);
  }
  v128.store(ytp, vacc0123);
  v128.store(ytp, vacc4567, 16);
}

function crow4<D>(j: usize, end: usize, cols: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  for (; j < end; j++) {
    const vw = f32x4.splat(loadWeight<D>(vals + at<D>(j)));
    vacc0123 = madd(vw, v128.load(xt + (<usize>load<u8>(cols + j) << 4)), vacc0123);
  }
  v128.store(ytp, vacc0123);
}

/** Rows per N chunk (their panel slices stay in L2 across the M tiles). */
// @ts-ignore: decorator
@inline const NC: i32 = 512;

function spmmBcsr<D>(x: usize, rowptr: usize, cols: usize, vals: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  assert(M >= 0 && N >= 0 && K >= 0, "spmm_bcsr_nt: negative size");
  assert((scratch & 15) == 0 && ((rowptr | x | y) & 3) == 0 && (vals & (sizeof<D>() - 1)) == 0, "spmm_bcsr_nt: misaligned pointer");
  if (M == 0 || N == 0) return;
  if (K == 0) {
    memory.fill(y, 0, (<usize>M * <usize>N) << 2);
    return;
  }
  const Mp = (M + 3) & ~3;
  const xt = scratch;
  const yt = scratch + (<usize>(Mp * SPMM_KC) << 2);
  for (let k0 = 0, p = 0; k0 < K; k0 += SPMM_KC, p++) {
    const kc = min(SPMM_KC, K - k0);
    const first = k0 == 0;
    packXT(x, M, K, k0, kc, Mp, xt);
    const rp = rowptr + (<usize>(p * N) << 2);
    for (let n0 = 0; n0 < N; n0 += NC) {
      const n1 = min(N, n0 + NC);
      for (let m0 = 0; m0 < Mp; ) {
        const w = tileWidth(Mp, m0);
        const xtt = xt + (<usize>(m0 * kc) << 2);
        for (let n = n0; n < n1; n++) {
          const j = <usize>load<u32>(rp + (<usize>n << 2));
          const end = <usize>load<u32>(rp + (<usize>n << 2), 4);
          const ytp = yt + (<usize>(n * Mp + m0) << 2);
          if (w == 16) crow16<D>(j, end, cols, vals, xtt, ytp, first);
          else if (w == 8) crow8<D>(j, end, cols, vals, xtt, ytp, first);
          else crow4<D>(j, end, cols, vals, xtt, ytp, first);
        }
        m0 += w;
      }
    }
  }
  unpackYT(yt, y, M, N, Mp);
}

/** y[N] = W·x for W [N,K] in panel CSR (vals, x, y 4-aligned; rowptr 4-aligned). */
export function f32_spmv_bcsr(rowptr: usize, cols: usize, vals: usize, x: usize, y: usize, N: i32, K: i32): void {
  spmvBcsr<f32>(rowptr, cols, vals, x, y, N, K);
}

/** f32_spmv_bcsr with bf16 values (vals 2-aligned). */
export function bf16_spmv_bcsr(rowptr: usize, cols: usize, vals: usize, x: usize, y: usize, N: i32, K: i32): void {
  spmvBcsr<u16>(rowptr, cols, vals, x, y, N, K);
}

/** f32_spmv_bcsr with f16 values (vals 2-aligned). */
export function f16_spmv_bcsr(rowptr: usize, cols: usize, vals: usize, x: usize, y: usize, N: i32, K: i32): void {
  spmvBcsr<i16>(rowptr, cols, vals, x, y, N, K);
}

/** Y[M,N] = X[M,K] · Wᵀ for W [N,K] in panel CSR. `scratch`: f32_spmm_nt_scratch(M,N,K) bytes, 16-aligned. */
export function f32_spmm_bcsr_nt(x: usize, rowptr: usize, cols: usize, vals: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  spmmBcsr<f32>(x, rowptr, cols, vals, y, M, N, K, scratch);
}

/** f32_spmm_bcsr_nt with bf16 values. */
export function bf16_spmm_bcsr_nt(x: usize, rowptr: usize, cols: usize, vals: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  spmmBcsr<u16>(x, rowptr, cols, vals, y, M, N, K, scratch);
}

/** f32_spmm_bcsr_nt with f16 values. */
export function f16_spmm_bcsr_nt(x: usize, rowptr: usize, cols: usize, vals: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  spmmBcsr<i16>(x, rowptr, cols, vals, y, M, N, K, scratch);
}
