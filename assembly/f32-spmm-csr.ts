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
// Measured against bitmap + values (assembly/f32-spmm-bitmap.ts: the same panels and value order, a u8 mask
// per 8 columns instead of a u8 offset per value; its GEMV swizzles 4 values into the set lanes of each
// nibble against a contiguous x load, its GEMM walks set bits with ctz), `node --import tsx
// bench/unstructured-format.ts`, one thread, same weights, one run (machine shared, load ~6 on 2 cores, so
// absolute numbers are low; the ratios held across shapes). Effective GFLOP/s, CSR vs bitmap (bitmap/CSR):
//   4096x4096 GEMV (DRAM-streamed)  50%: 3.5 vs 1.6 (0.46x)  70%: 5.9 vs 2.1 (0.36x)  90%: 13.2 vs 1.6 (0.12x)
//   4096x4096 GEMM M=8              50%: 20.1 vs 7.7 (0.38x) 70%: 36.1 vs 8.8 (0.24x) 90%: 98.1 vs 11.9 (0.12x)
//   4096x4096 GEMM M=64             50%: 28.9 vs 16.7 (0.58x) 70%: 41.7 vs 13.6 (0.33x) 90%: 164 vs 24.3 (0.15x)
//   3072x768 GEMV / GEMM M=64       50%: 0.54x / 0.43x  70%: 0.30x / 0.37x  90%: 0.10x / 0.25x
// Bitmap saves 15% of the bytes at 50% (34.2 vs 40.2 MiB at 4096²) and 12% at 70%, but its work is per column
// (GEMV) or per set bit with a serial ctz/popcount chain (GEMM), and that costs more than the bytes: panel CSR
// wins at every sparsity, batch and shape, so it stays the only unstructured kernel layout.
//
// Summation order (deterministic): per output, panels in order, nonzeros in stored (column) order.
import { SPMM_KC, tileWidth, packXT, unpackYT, loadAcc } from "./f32-spmm-common";

/** [x[c & 255], x[(c >> 8) & 255], x[(c >> 16) & 255], x[c >> 24]] for 4 packed u8 columns c. */
// @ts-ignore: decorator
@inline
function gather4(xp: usize, c: usize): v128 {
  let v = v128.load32_zero(xp + ((c & 255) << 2));
  v = v128.load32_lane(xp + (((c >> 8) & 255) << 2), v, 1);
  v = v128.load32_lane(xp + (((c >> 16) & 255) << 2), v, 2);
  return v128.load32_lane(xp + ((c >> 24) << 2), v, 3);
}

/** y[N] = W·x for W [N,K] in panel CSR (vals, x, y 4-aligned; rowptr 4-aligned). */
export function f32_spmv_bcsr(rowptr: usize, cols: usize, vals: usize, x: usize, y: usize, N: i32, K: i32): void {
  assert(N >= 0 && K >= 0, "f32_spmv_bcsr: negative size");
  assert(((rowptr | vals | x | y) & 3) == 0, "f32_spmv_bcsr: misaligned pointer");
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
        vacc0 = f32x4.add(vacc0, f32x4.mul(gather4(xp, c0), v128.load(vals + (j << 2))));
        vacc1 = f32x4.add(vacc1, f32x4.mul(gather4(xp, c1), v128.load(vals + (j << 2), 16)));
      }
      if (j + 4 <= end) {
        vacc0 = f32x4.add(vacc0, f32x4.mul(gather4(xp, <usize>load<u32>(cols + j)), v128.load(vals + (j << 2))));
        j += 4;
      }
      const vsum = f32x4.add(vacc0, vacc1);
      const s0: f32 = (f32x4.extract_lane(vsum, 0) + f32x4.extract_lane(vsum, 1)) + (f32x4.extract_lane(vsum, 2) + f32x4.extract_lane(vsum, 3));
      let s1: f32 = 0;
      for (; j < end; j++) s1 += load<f32>(vals + (j << 2)) * load<f32>(xp + (<usize>load<u8>(cols + j) << 2));
      const s = s0 + s1;
      store<f32>(yp, p == 0 ? s : load<f32>(yp) + s);
      rp += 4;
    }
  }
}

function crow16(j: usize, end: usize, cols: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  let vacc4567 = loadAcc(ytp, first, 16);
  let vacc89AB = loadAcc(ytp, first, 32);
  let vaccCDEF = loadAcc(ytp, first, 48);
  for (; j < end; j++) {
    const p = xt + (<usize>load<u8>(cols + j) << 6);
    const vw = v128.load32_splat(vals + (j << 2));
    vacc0123 = f32x4.add(vacc0123, f32x4.mul(vw, v128.load(p)));
    vacc4567 = f32x4.add(vacc4567, f32x4.mul(vw, v128.load(p, 16)));
    vacc89AB = f32x4.add(vacc89AB, f32x4.mul(vw, v128.load(p, 32)));
    vaccCDEF = f32x4.add(vaccCDEF, f32x4.mul(vw, v128.load(p, 48)));
  }
  v128.store(ytp, vacc0123);
  v128.store(ytp, vacc4567, 16);
  v128.store(ytp, vacc89AB, 32);
  v128.store(ytp, vaccCDEF, 48);
}

function crow8(j: usize, end: usize, cols: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  let vacc4567 = loadAcc(ytp, first, 16);
  for (; j < end; j++) {
    const p = xt + (<usize>load<u8>(cols + j) << 5);
    const vw = v128.load32_splat(vals + (j << 2));
    vacc0123 = f32x4.add(vacc0123, f32x4.mul(vw, v128.load(p)));
    vacc4567 = f32x4.add(vacc4567, f32x4.mul(vw, v128.load(p, 16)));
  }
  v128.store(ytp, vacc0123);
  v128.store(ytp, vacc4567, 16);
}

function crow4(j: usize, end: usize, cols: usize, vals: usize, xt: usize, ytp: usize, first: bool): void {
  let vacc0123 = loadAcc(ytp, first, 0);
  for (; j < end; j++) {
    const vw = v128.load32_splat(vals + (j << 2));
    vacc0123 = f32x4.add(vacc0123, f32x4.mul(vw, v128.load(xt + (<usize>load<u8>(cols + j) << 4))));
  }
  v128.store(ytp, vacc0123);
}

/** Rows per N chunk (their panel slices stay in L2 across the M tiles). */
// @ts-ignore: decorator
@inline const NC: i32 = 512;

/** Y[M,N] = X[M,K] · Wᵀ for W [N,K] in panel CSR. `scratch`: f32_spmm_nt_scratch(M,N,K) bytes, 16-aligned. */
export function f32_spmm_bcsr_nt(x: usize, rowptr: usize, cols: usize, vals: usize, y: usize, M: i32, N: i32, K: i32, scratch: usize): void {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_spmm_bcsr_nt: negative size");
  assert((scratch & 15) == 0 && ((rowptr | vals | x | y) & 3) == 0, "f32_spmm_bcsr_nt: misaligned pointer");
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
          if (w == 16) crow16(j, end, cols, vals, xtt, ytp, first);
          else if (w == 8) crow8(j, end, cols, vals, xtt, ytp, first);
          else crow4(j, end, cols, vals, xtt, ytp, first);
        }
        m0 += w;
      }
    }
  }
  unpackYT(yt, y, M, N, Mp);
}
