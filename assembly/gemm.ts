import { madd, rows0123, rows4567, sliceBytes } from "./simd";


// f32 GEMM, "nt" layout: Y[M,N] = X[M,K] · W[N,K]ᵀ (+ Y). Both operands are K-contiguous (activations
// times a PyTorch-layout weight), which suits neither operand for a broadcast/FMA micro-kernel directly, so:
//
//   for n0 in steps of NC:                 (NC·KC·4 bytes of packed W stay in L2)
//     for k0 in steps of KC:
//       pack W[n0:n0+NC, k0:k0+KC] into 8-column panels [KC][8] (transposed; zero-padded past N)
//       for i in steps of MR=4 rows of X:
//         pack X[i:i+4, k0:k0+KC] as [KC][4] (4·KC·4 bytes, stays in L1)
//         for each 8-column panel: micro-kernel 4x8 over KC: broadcast X[i+r, k] (load32_splat from the
//                                  packed X), mul+add against the 8 packed W values of k,
//                                  8 f32x4 accumulators (vacc{r}_0123/_4567)
//
// The first K block stores (or adds, when accumulate = 1); later K blocks add. Rows past a multiple of 4
// go through a 1x8 kernel; columns past a multiple of 8 are zero in the panel and not stored.
// Summation order per output: blocks of KC in order, and inside a block k in order: deterministic.
// X and Y may be only 4-byte aligned (any row of odd width); `pack` must be 16-byte aligned.

// @ts-ignore: decorator
@inline const MR = 4;
// @ts-ignore: decorator
@inline const NR = 8;
// @ts-ignore: decorator
@inline const KC = 256;
// @ts-ignore: decorator
@inline const NC = 1024;

/** Bytes of `pack` scratch f32_gemm_nt needs: one NC x KC block of W padded to whole 8-column panels, 4 x KC of X, a 4x8 tile. */
export function f32_gemm_nt_scratch(M: i32, N: i32, K: i32): i32 {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_gemm_nt_scratch: negative size");
  const nc = min(N, NC);
  const kc = min(K, KC);
  return (((nc + NR - 1) & ~(NR - 1)) + MR) * kc * 4 + TILE_BYTES;
}

/** Pack X[0:MR, 0:kc] (row stride ldx bytes) as apack[kk*MR + r] = X[r, kk]: one stream of broadcasts. */
function packX(x: usize, ldx: usize, kc: i32, apack: usize): void {
  for (let r = 0; r < MR; r++) {
    const src = x + <usize>r * ldx;
    const d = apack + (<usize>r << 2);
    for (let kk = 0; kk < kc; kk++) store<f32>(d + <usize>kk * (MR << 2), load<f32>(src + (<usize>kk << 2)));
  }
}

/** Pack W[n0:n0+nc, k0:k0+kc] (row stride ldw bytes) as panels of 8 columns: panel[kk*8 + j] = W[n0+p*8+j, k0+kk]. */
function packW(w: usize, ldw: usize, n0: i32, nc: i32, k0: i32, kc: i32, pack: usize): void {
  const panelBytes = <usize>kc * (NR << 2);
  for (let p = 0, np = (nc + NR - 1) / NR; p < np; p++) {
    const dst = pack + <usize>p * panelBytes;
    const jn = min(NR, nc - p * NR);
    for (let j = 0; j < jn; j++) {
      const src = w + <usize>(n0 + p * NR + j) * ldw + (<usize>k0 << 2);
      const d = dst + (<usize>j << 2);
      let kk = 0;
      for (; kk + 4 <= kc; kk += 4) {
        const vw0123 = v128.load(src + (<usize>kk << 2));
        const dk = d + (<usize>kk << 5);
        v128.store_lane<f32>(dk, vw0123, 0);
        v128.store_lane<f32>(dk, vw0123, 1, 32);
        v128.store_lane<f32>(dk, vw0123, 2, 64);
        v128.store_lane<f32>(dk, vw0123, 3, 96);
      }
      for (; kk < kc; kk++) {
        store<f32>(d + (<usize>kk << 5), load<f32>(src + (<usize>kk << 2)));
      }
    }
    for (let j = jn; j < NR; j++) {
      const d = dst + (<usize>j << 2);
      for (let kk = 0; kk < kc; kk++) store<f32>(d + (<usize>kk << 5), 0);
    }
  }
}

/** C[0, 0:8] (=|+=) the two accumulators (a whole panel row). */
// @ts-ignore: decorator
@inline
function storeRow(c: usize, vacc0123: v128, vacc4567: v128, add: bool): void {
  if (add) {
    vacc0123 = f32x4.add(vacc0123, v128.load(c));
    vacc4567 = f32x4.add(vacc4567, v128.load(c, 16));
  }
  v128.store(c, vacc0123);
  v128.store(c, vacc4567, 16);
}

// The last panel of a row (nr < 8 columns) runs the same micro-kernel, from the same call site, into a 4x8
// tile in the scratch; `storeTile` then copies nr columns out. So each micro-kernel stores only whole panels
// and is called from one place. Node 20's V8 compiled the micro-kernel's loop ~18% slower when its function
// also held a partial-store path (lane extracts in a loop over nr) or a second inlined copy of the kernel:
// 41-42 against 49-50 GFLOP/s at 512 and 1024, both versions side by side in one process (Node 24: ~50 both).
// @ts-ignore: decorator
@inline const TILE_BYTES = MR * NR * 4;

function storeTile(tile: usize, c: usize, ldc: usize, rows: i32, nr: i32, add: bool): void {
  for (let r = 0; r < rows; r++) {
    const t = tile + (<usize>r << 5);
    const d = c + <usize>r * ldc;
    for (let j = 0; j < nr; j++) {
      let v = load<f32>(t + (<usize>j << 2));
      if (add) v += load<f32>(d + (<usize>j << 2));
      store<f32>(d + (<usize>j << 2), v);
    }
  }
}

/** Y[M,N] = X[M,K] · W[N,K]ᵀ (+ Y when accumulate = 1). `pack`: f32_gemm_nt_scratch(M,N,K) bytes, 16-aligned. */
export function f32_gemm_nt(x: usize, w: usize, y: usize, M: i32, N: i32, K: i32, accumulate: i32, pack: usize): void {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_gemm_nt: negative size");
  assert(((x | w | y) & 3) == 0, "f32_gemm_nt: pointer not 4-byte aligned");
  assert((pack & 15) == 0, "f32_gemm_nt: pack scratch not 16-byte aligned");
  assert(accumulate == 0 || accumulate == 1, "f32_gemm_nt: accumulate must be 0 or 1");
  const ldx = <usize>K << 2;
  const ldy = <usize>N << 2;
  if (K == 0) {
    if (!accumulate) for (let i = 0; i < M; i++) memory.fill(y + <usize>i * ldy, 0, ldy);
    return;
  }
  if (M == 0 || N == 0) return;
  const MM = M - M % MR;
  for (let n0 = 0; n0 < N; n0 += NC) {
    const nc = min(NC, N - n0);
    const np = (nc + NR - 1) / NR;
    for (let k0 = 0; k0 < K; k0 += KC) {
      const kc = min(KC, K - k0);
      const add = accumulate != 0 || k0 > 0;
      packW(w, ldx, n0, nc, k0, kc, pack);
      const panelBytes = <usize>kc << 5;
      const xk = x + (<usize>k0 << 2);
      const yn = y + (<usize>n0 << 2);
      const apack = pack + <usize>np * panelBytes;
      const tile = apack + (<usize>kc << 4);
      const nf = nc >> 3; // whole panels
      for (let i = 0; i < MM; i += MR) {
        packX(xk + <usize>i * ldx, ldx, kc, apack);
        const c = yn + <usize>i * ldy;
        for (let p = 0; p < np; p++) {
          const partial = p == nf;
          ukernel4x8<f32, u8>(apack, pack + <usize>p * panelBytes, kc, partial ? tile : c + (<usize>p << 5), partial ? <usize>(NR << 2) : ldy, add && !partial);
          if (partial) storeTile(tile, c + (<usize>p << 5), ldy, MR, nc & (NR - 1), add);
        }
      }
      for (let i = MM; i < M; i++) {
        const a = xk + <usize>i * ldx;
        const c = yn + <usize>i * ldy;
        for (let p = 0; p < np; p++) {
          const partial = p == nf;
          ukernel1x8<f32, u8>(a, pack + <usize>p * panelBytes, kc, partial ? tile : c + (<usize>p << 5), add && !partial);
          if (partial) storeTile(tile, c + (<usize>p << 5), ldy, 1, nc & (NR - 1), add);
        }
      }
    }
  }
}

// ---- prepacked weights: Y[M,N] = X[M,K] · Wᵀ with W in p8 panels (assembly/gemv.ts), f32 / bf16 / f16 --------
//
// The weights are packed once at load (src/model/packed.ts), so a call packs only X, as 4-row strips of K
// blocks of KC ([KC][4] each). Every (panel p, K block) pair is one pass of the 4x8 micro-kernel (as
// f32_gemm_nt's, weights widened in registers) over the 4-row strips, rows past a multiple of 4 through the
// 1x8 kernel straight from X. Two orders of those passes, by the size of X:
//   - panel-major, when the strips of all of X fit in PO_BYTES (small batches: decode steps, short prompts):
//     pack every strip of every K block once; for each panel p, its K blocks in order. A panel is
//     contiguous over K ([K][8]), so W streams from memory in one sequential run per panel. At 4096², batch
//     8, this is 1.5x the block-major order (21 → 31 GFLOP/s: the 8 KB slices of the block-major order
//     defeat the hardware prefetcher), and no slower at any shape bench kernels reports;
//   - block-major otherwise: for m0 in steps of MC rows, for each K block: pack that block's strips of
//     X[m0:m0+MC] (≤ 256 KB, L2), then every panel's slice of it (KC·8 weights, 8 KB f32 / 4 KB half, L1)
//     against every strip. W streams once per MC rows of X (batch ≤ 256: once), not once per strip.
// Both orders do the same operations on every output: K blocks of KC in order, each summed from 0 in k order
// and added to Y. So the bits do not depend on the order, on M or on the batch a row came in; for f32
// weights in the baseline build they are f32_gemm_nt's sums (bit-identical); the relaxed build fuses each
// multiply-add.

// @ts-ignore: decorator
@inline const MC = 256;
// @ts-ignore: decorator
@inline const PO_BYTES = 512 << 10;

/** Whether gemmP8 runs panel-major for these sizes (all of X's strips fit in PO_BYTES). */
// @ts-ignore: decorator
@inline
function panelMajor(M: i32, K: i32): bool {
  return M <= MC && <i64>(M & ~3) * <i64>K * 4 <= PO_BYTES;
}

/** Bytes of `pack` scratch *_gemm_p8_nt needs: the 4-row strips of X it packs at once (see gemmP8), a 4x8 tile. */
export function gemm_p8_nt_scratch(M: i32, K: i32): i32 {
  assert(M >= 0 && K >= 0, "gemm_p8_nt_scratch: negative size");
  const strips = panelMajor(M, K) ? (M & ~3) * ((K + KC - 1) / KC) * min(K, KC) : min(M & ~3, MC) * min(K, KC);
  return strips * 4 + TILE_BYTES;
}

/** c + a·b, fused in the relaxed build only when F is i8 (see ukernel4x8). */
// @ts-ignore: decorator
@inline
function mac<F>(a: v128, b: v128, c: v128): v128 {
  if (isSigned<F>()) return madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/**
 * 4x8 micro-kernel: C[0:4, 0:8] (=|+=) Apacked[0:kc][0:4] · panel[0:kc][0:8] (one k slice of 8 weights of type D
 * after another), C rows ldc bytes apart. F: u8 = multiply then add in every build (f32_gemm_nt, the pruning
 * GEMM: the same sums in both builds), i8 = fused in the relaxed build (the inference GEMMs).
 * Measured (Node 20, Xeon SPR, baseline build): not unrolling beats unroll 2 and 4 (~43 vs ~36 GFLOP/s), and
 * 4x8 beats 3x8, 5x8 and 6x8 (register pressure: V8 has 16 xmm registers on x64).
 */
function ukernel4x8<D, F>(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, add: bool): void {
  let vacc0_0123 = f32x4.splat(0);
  let vacc0_4567 = f32x4.splat(0);
  let vacc1_0123 = f32x4.splat(0);
  let vacc1_4567 = f32x4.splat(0);
  let vacc2_0123 = f32x4.splat(0);
  let vacc2_4567 = f32x4.splat(0);
  let vacc3_0123 = f32x4.splat(0);
  let vacc3_4567 = f32x4.splat(0);
  const sb = sliceBytes<D>();
  const bend = bp + <usize>kc * sb;
  while (bp < bend) {
    const vb0123 = rows0123<D>(bp, 0);
    const vb4567 = rows4567<D>(bp, 0);
    let va = v128.load32_splat(ap);
    vacc0_0123 = mac<F>(va, vb0123, vacc0_0123);
    vacc0_4567 = mac<F>(va, vb4567, vacc0_4567);
    va = v128.load32_splat(ap, 4);
    vacc1_0123 = mac<F>(va, vb0123, vacc1_0123);
    vacc1_4567 = mac<F>(va, vb4567, vacc1_4567);
    va = v128.load32_splat(ap, 8);
    vacc2_0123 = mac<F>(va, vb0123, vacc2_0123);
    vacc2_4567 = mac<F>(va, vb4567, vacc2_4567);
    va = v128.load32_splat(ap, 12);
    vacc3_0123 = mac<F>(va, vb0123, vacc3_0123);
    vacc3_4567 = mac<F>(va, vb4567, vacc3_4567);
    ap += 16;
    bp += sb;
  }
  storeRow(c, vacc0_0123, vacc0_4567, add);
  storeRow(c + ldc, vacc1_0123, vacc1_4567, add);
  storeRow(c + 2 * ldc, vacc2_0123, vacc2_4567, add);
  storeRow(c + 3 * ldc, vacc3_0123, vacc3_4567, add);
}

/** 1x8 micro-kernel for the rows past a multiple of 4 (a: the row of X itself, k-contiguous). */
function ukernel1x8<D, F>(a: usize, bp: usize, kc: i32, c: usize, add: bool): void {
  let vacc0_0123 = f32x4.splat(0);
  let vacc0_4567 = f32x4.splat(0);
  const sb = sliceBytes<D>();
  for (let bend = bp + <usize>kc * sb; bp < bend; bp += sb) {
    const va = v128.load32_splat(a);
    vacc0_0123 = mac<F>(va, rows0123<D>(bp, 0), vacc0_0123);
    vacc0_4567 = mac<F>(va, rows4567<D>(bp, 0), vacc0_4567);
    a += 4;
  }
  storeRow(c, vacc0_0123, vacc0_4567, add);
}

function gemmP8<D>(x: usize, w: usize, y: usize, M: i32, N: i32, K: i32, pack: usize): void {
  assert(M >= 0 && N >= 0 && K >= 0, "gemm_p8_nt: negative size");
  assert(((x | y) & 3) == 0 && (w & 15) == 0 && (pack & 15) == 0, "gemm_p8_nt: w and pack must be 16-aligned, x and y 4-aligned");
  const ldx = <usize>K << 2;
  const ldy = <usize>N << 2;
  if (K == 0) {
    for (let i = 0; i < M; i++) memory.fill(y + <usize>i * ldy, 0, ldy);
    return;
  }
  if (M == 0 || N == 0) return;
  const sb = sliceBytes<D>();
  const pb = <usize>K * sb;
  const NP = (N + 7) >> 3;
  const NF = N >> 3; // whole panels
  const NKB = (K + KC - 1) / KC;
  const MM = M & ~3;
  const po = panelMajor(M, K);
  const SB = <usize>min(K, KC) << 4; // bytes of one strip's K block in the scratch
  const tile = pack + <usize>gemm_p8_nt_scratch(M, K) - TILE_BYTES;
  for (let m0 = 0; m0 < M; m0 += MC) {
    const m1 = min(M, m0 + MC);
    const s1 = min(m1, MM); // strips of 4 in [m0, s1)
    const nS = <usize>((s1 - m0) >> 2);
    // panel-major: every K block's strips now, at strip (kb·nS + s)
    if (po) {
      for (let kb = 0; kb < NKB; kb++) {
        const k0 = kb * KC;
        for (let i = m0; i < s1; i += MR) packX(x + (<usize>k0 << 2) + <usize>i * ldx, ldx, min(KC, K - k0), pack + (<usize>kb * nS + <usize>((i - m0) >> 2)) * SB);
      }
    }
    for (let a = 0, A = po ? NP : NKB; a < A; a++) {
      // block-major: this K block's strips, at strip s
      if (!po) for (let i = m0; i < s1; i += MR) packX(x + (<usize>(a * KC) << 2) + <usize>i * ldx, ldx, min(KC, K - a * KC), pack + <usize>((i - m0) >> 2) * SB);
      for (let b = 0, B = po ? NKB : NP; b < B; b++) {
        const p = po ? a : b;
        const kb = po ? b : a;
        const k0 = kb * KC;
        const kc = min(KC, K - k0);
        const add = k0 > 0;
        const strips = pack + (po ? <usize>kb * nS * SB : 0);
        // one call site per micro-kernel: the last, partial panel goes to the tile (see storeTile)
        const partial = p == NF;
        const bp = w + <usize>p * pb + <usize>k0 * sb;
        const yp = y + (<usize>p << 5);
        const ldc = partial ? <usize>(NR << 2) : ldy;
        for (let i = m0; i < s1; i += MR) {
          const c = yp + <usize>i * ldy;
          ukernel4x8<D, i8>(strips + <usize>((i - m0) >> 2) * SB, bp, kc, partial ? tile : c, ldc, add && !partial);
          if (partial) storeTile(tile, c, ldy, MR, N & (NR - 1), add);
        }
        for (let i = max(s1, m0); i < m1; i++) {
          const c = yp + <usize>i * ldy;
          ukernel1x8<D, i8>(x + (<usize>k0 << 2) + <usize>i * ldx, bp, kc, partial ? tile : c, add && !partial);
          if (partial) storeTile(tile, c, ldy, 1, N & (NR - 1), add);
        }
      }
    }
  }
}

/** Y[M,N] = X[M,K]·Wᵀ for W f32 in p8 panels; `pack`: gemm_p8_nt_scratch(M,K) bytes, 16-aligned. */
export function f32_gemm_p8_nt(x: usize, w: usize, y: usize, M: i32, N: i32, K: i32, pack: usize): void {
  gemmP8<f32>(x, w, y, M, N, K, pack);
}

/** Y[M,N] = X[M,K]·Wᵀ for W bf16 in p8 panels (widened in registers, f32 accumulation). */
export function bf16_gemm_p8_nt(x: usize, w: usize, y: usize, M: i32, N: i32, K: i32, pack: usize): void {
  gemmP8<u16>(x, w, y, M, N, K, pack);
}

/** Y[M,N] = X[M,K]·Wᵀ for W f16 in p8 panels (widened in registers, f32 accumulation). */
export function f16_gemm_p8_nt(x: usize, w: usize, y: usize, M: i32, N: i32, K: i32, pack: usize): void {
  gemmP8<i16>(x, w, y, M, N, K, pack);
}

// ---- strided: C[M,N] (+)= alpha · op(A) · B (the Gram update and FISTA's W·H; from f32-gram.ts) -------------
//
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
@inline const STRIDED_NC: i32 = 64;

/** C[0:4, 0:8] (+)= alpha · the tile's sums (rows ldc bytes apart): the epilogue of the strided tiles. */
// @ts-ignore: decorator
@inline
function storeTile4x8(
  c: usize, ldc: usize, valpha: v128, addC: bool,
  vacc0_0123: v128, vacc0_4567: v128, vacc1_0123: v128, vacc1_4567: v128,
  vacc2_0123: v128, vacc2_4567: v128, vacc3_0123: v128, vacc3_4567: v128,
): void {
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
function tileStrided4x8(
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
  storeTile4x8(c, ldc, valpha, addC, vacc0_0123, vacc0_4567, vacc1_0123, vacc1_4567, vacc2_0123, vacc2_4567, vacc3_0123, vacc3_4567);
}

/**
 * tileStrided4x8 on packed operands (op(A) strip [kc][4], B panel [kc][8]): the same products and sums in the
 * same order, so the same bits, with constant offsets (V8 keeps the pointers and the 8 sums in registers; the
 * general tile's variable strides cost it ~30% on the OBS sweep's lazy updates, K = 128).
 */
function tilePacked4x8(a: usize, b: usize, c: usize, ldc: usize, K: i32, valpha: v128, addC: bool): void {
  let vacc0_0123 = f32x4.splat(0), vacc0_4567 = f32x4.splat(0);
  let vacc1_0123 = f32x4.splat(0), vacc1_4567 = f32x4.splat(0);
  let vacc2_0123 = f32x4.splat(0), vacc2_4567 = f32x4.splat(0);
  let vacc3_0123 = f32x4.splat(0), vacc3_4567 = f32x4.splat(0);
  let pa = a;
  let pb = b;
  const bend = b + (<usize>K << 5);
  while (pb < bend) {
    const vb0123 = v128.load(pb);
    const vb4567 = v128.load(pb, 16);
    let va = v128.load32_splat(pa);
    vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(va, vb0123));
    vacc0_4567 = f32x4.add(vacc0_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(pa, 4);
    vacc1_0123 = f32x4.add(vacc1_0123, f32x4.mul(va, vb0123));
    vacc1_4567 = f32x4.add(vacc1_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(pa, 8);
    vacc2_0123 = f32x4.add(vacc2_0123, f32x4.mul(va, vb0123));
    vacc2_4567 = f32x4.add(vacc2_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(pa, 12);
    vacc3_0123 = f32x4.add(vacc3_0123, f32x4.mul(va, vb0123));
    vacc3_4567 = f32x4.add(vacc3_4567, f32x4.mul(va, vb4567));
    pa += 16;
    pb += 32;
  }
  storeTile4x8(c, ldc, valpha, addC, vacc0_0123, vacc0_4567, vacc1_0123, vacc1_4567, vacc2_0123, vacc2_4567, vacc3_0123, vacc3_4567);
}

// @ts-ignore: decorator
@inline
function edgeStrided1x1(a: usize, sak: usize, b: usize, ldb: usize, c: usize, K: i32, alpha: f32, addC: bool): void {
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

// @ts-ignore: decorator
@inline const STRIDED_MC: i32 = 128;

/**
 * Bytes of `pack` scratch f32_gemm_strided uses: one KC × STRIDED_NC block of B as 8-column panels, and the
 * 4-row strips of op(A) for STRIDED_MC rows.
 */
export function f32_gemm_strided_scratch(): i32 {
  return KC * (STRIDED_NC + STRIDED_MC) * 4;
}

/** Copy the strip op(A)[0:4, 0:kc] (element (r, k) at a + r·sai + k·sak bytes) as [kc][4]: one stream of loads. */
function packStridedA(a: usize, sai: usize, sak: usize, kc: i32, dst: usize): void {
  for (let kk = 0; kk < kc; kk++) {
    const src = a + <usize>kk * sak;
    const d = dst + (<usize>kk << 4);
    store<f32>(d, load<f32>(src));
    store<f32>(d, load<f32>(src + sai), 4);
    store<f32>(d, load<f32>(src + 2 * sai), 8);
    store<f32>(d, load<f32>(src + 3 * sai), 12);
  }
}

/**
 * Copy B[0:kc, 0:STRIDED_NC) (row stride ldb bytes) into panels of 8 columns, panel p = [kc][8] contiguous:
 * the tile then streams its B operand instead of touching kc rows of a wide matrix (kc pages, kc TLB entries).
 */
function packStridedB(b: usize, ldb: usize, kc: i32, cols: i32, pack: usize): void {
  const panelBytes = <usize>kc << 5;
  for (let kk = 0; kk < kc; kk++) {
    const src = b + <usize>kk * ldb;
    const dst = pack + (<usize>kk << 5);
    for (let j = 0; j < cols; j += 8) {
      const d = dst + <usize>(j >> 3) * panelBytes;
      v128.store(d, v128.load(src + (<usize>j << 2)));
      v128.store(d, v128.load(src + (<usize>j << 2), 16), 16);
    }
  }
}

/**
 * C[M,N] (+)= alpha · op(A)·B; op(A)(i,k) = a[i·sai + k·sak]; B [K, ldb]; C [M, ldc] (strides in floats).
 * accumulate = 1 adds to C; upper = 1 computes only elements with j ≥ i (Gram use; needs M ≤ N: a band of
 * rows of the triangle starting on the diagonal, see f32_gram_upper_rows). `pack` (16-byte aligned,
 * f32_gemm_strided_scratch() bytes, or 0): blocked as GotoBLAS does — per KC slice of k, the 4-row strips of
 * STRIDED_MC rows of op(A) are packed once, then per STRIDED_NC columns B's block into 8-column panels (when
 * two strips share it), each panel (L1) serving every strip of the row block (L2). Every element is the same
 * sum in the same order (k ascending in a tile, the KC slices in turn), so the same bits with or without.
 */
export function f32_gemm_strided(
  a: usize, sai: i32, sak: i32, b: usize, ldb: i32, c: usize, ldc: i32,
  M: i32, N: i32, K: i32, alpha: f32, accumulate: i32, upper: i32, pack: usize,
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
  const apack = pack + <usize>KC * (STRIDED_NC << 2);
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const stripBytes = <usize>kc << 4;
    const addC = accumulate != 0 || k0 > 0;
    const ak = a + <usize>k0 * sakB;
    const bk = b + <usize>k0 * ldbB;
    for (let m0 = 0; m0 < M4; m0 += STRIDED_MC) {
      const m1 = min(M4, m0 + STRIDED_MC);
      // upper: the first column block any strip of [m0, m1) reaches
      const jFirst = upper ? (m0 & ~7) : 0;
      if (jFirst >= N8) continue;
      if (pack != 0) for (let i = m0; i < m1; i += 4) packStridedA(ak + <usize>i * saiB, saiB, sakB, kc, apack + <usize>((i - m0) >> 2) * stripBytes);
      for (let j0 = jFirst - jFirst % STRIDED_NC; j0 < N8; j0 += STRIDED_NC) {
        const jEnd = min(j0 + STRIDED_NC, N8);
        // strips of [m0, m1) that reach this column block (upper: rows i with i & ~7 < jEnd)
        const iEnd = upper ? min(m1, jEnd) : m1;
        const packed = pack != 0 && iEnd - m0 >= 8;
        if (packed) packStridedB(bk + (<usize>j0 << 2), ldbB, kc, jEnd - j0, pack);
        for (let j = j0; j < jEnd; j += 8) {
          const pb = packed ? pack + <usize>((j - j0) >> 3) * (<usize>kc << 5) : bk + (<usize>j << 2);
          // upper: strips whose diagonal tile (i & ~7) is at or left of j
          const iTo = upper ? min(m1, (j + 8)) : m1;
          for (let i = m0; i < iTo; i += 4) {
            const ci = c + <usize>i * ldcB + (<usize>j << 2);
            if (pack != 0) {
              const ap = apack + <usize>((i - m0) >> 2) * stripBytes;
              if (packed) tilePacked4x8(ap, pb, ci, ldcB, kc, valpha, addC);
              else tileStrided4x8(ap, 4, 16, pb, ldbB, ci, ldcB, kc, valpha, addC);
            } else tileStrided4x8(ak + <usize>i * saiB, saiB, sakB, pb, ldbB, ci, ldcB, kc, valpha, addC);
          }
        }
      }
    }
    // edges: rows i ≥ M4 for every column, and columns j ≥ N8 for rows < M4
    for (let i = 0; i < M; i++) {
      const jFrom = i < M4 ? N8 : 0;
      for (let j = jFrom; j < N; j++) {
        if (upper && j < i) continue;
        edgeStrided1x1(ak + <usize>i * saiB, sakB, bk + (<usize>j << 2), ldbB, c + <usize>i * ldcB + (<usize>j << 2), kc, alpha, addC);
      }
    }
  }
}

/** G[rows, cols] = W[rows, k] · H[k, cols] (row-major; for symmetric H this is W·Hᵀ too): FISTA's W·H step. */
export function f32_fista_wh(w: usize, h: usize, g: usize, rows: i32, cols: i32, k: i32): void {
  f32_gemm_strided(w, k, 1, h, cols, g, cols, rows, cols, k, 1, 0, 0, 0);
}

// ---- nn / tn: the backward GEMMs of a linear layer (training; from f32-gemm-backward.ts) ----------------------
//
// f32 GEMM variants of the backward pass of a linear layer Y[T,N] = X[T,K] · W[N,K]ᵀ (above):
//
//   f32_gemm_nn: C[M,N] (=|+=) A[M,K] · B[K,N]      dX[T,K] = dY[T,N] · W[N,K]    (M=T,  K=N_out, N=K_in)
//   f32_gemm_tn: C[M,N] (=|+=) A[K,M]ᵀ · B[K,N]     dW[N,K] += dY[T,N]ᵀ · X[T,K]  (M=N_out, K=T, N=K_in)
//
// In both, B is row-major with its rows along the reduction index, so the 8 output columns of a panel are
// 8 contiguous floats of one B row: no packing of B is needed. The two differ only in how A is walked
// (A(i,k) at a + i·aRowStride + k·aKStride), so they share one 4x8 micro-kernel:
//
//   for k0 in steps of KC:                  (a KC x 8 slab of B, 8 KiB, stays in L1 across all row blocks)
//     for each 8-column panel j:
//       for i in steps of 4 rows: 4x8 micro-kernel over k in [k0, k0+KC): broadcast A(i+r, k)
//                                 (load32_splat), mul+add against B[k, j:j+8]; 8 f32x4 accumulators
//
// The first K block stores (or adds, when accumulate = 1); later blocks add. Rows past a multiple of 4 use a
// 1x8 kernel; columns past a multiple of 8 a scalar loop. Summation order per output: blocks of KC in order,
// k in order inside a block: deterministic, independent of M and N. Pointers need only 4-byte alignment.


/** C[0:4, 0:8] (=|+=) Σ_k A(r, k) · B[k, 0:8] for kc values of k; A(r,k) at a + r·ars + k·aks, B rows ldb bytes apart. */
function ukernelNn4x8(a: usize, ars: usize, aks: usize, b: usize, ldb: usize, kc: i32, c: usize, ldc: usize, add: bool): void {
  let vacc0_0123 = f32x4.splat(0);
  let vacc0_4567 = f32x4.splat(0);
  let vacc1_0123 = f32x4.splat(0);
  let vacc1_4567 = f32x4.splat(0);
  let vacc2_0123 = f32x4.splat(0);
  let vacc2_4567 = f32x4.splat(0);
  let vacc3_0123 = f32x4.splat(0);
  let vacc3_4567 = f32x4.splat(0);
  const a1 = ars;
  const a2 = ars * 2;
  const a3 = ars * 3;
  for (let k = 0; k < kc; k++) {
    const vb0123 = v128.load(b);
    const vb4567 = v128.load(b, 16);
    let va = v128.load32_splat(a);
    vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(va, vb0123));
    vacc0_4567 = f32x4.add(vacc0_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(a + a1);
    vacc1_0123 = f32x4.add(vacc1_0123, f32x4.mul(va, vb0123));
    vacc1_4567 = f32x4.add(vacc1_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(a + a2);
    vacc2_0123 = f32x4.add(vacc2_0123, f32x4.mul(va, vb0123));
    vacc2_4567 = f32x4.add(vacc2_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(a + a3);
    vacc3_0123 = f32x4.add(vacc3_0123, f32x4.mul(va, vb0123));
    vacc3_4567 = f32x4.add(vacc3_4567, f32x4.mul(va, vb4567));
    a += aks;
    b += ldb;
  }
  storeRow(c, vacc0_0123, vacc0_4567, add);
  storeRow(c + ldc, vacc1_0123, vacc1_4567, add);
  storeRow(c + 2 * ldc, vacc2_0123, vacc2_4567, add);
  storeRow(c + 3 * ldc, vacc3_0123, vacc3_4567, add);
}

/** 1x8 micro-kernel for the rows past a multiple of 4. */
function ukernelNn1x8(a: usize, aks: usize, b: usize, ldb: usize, kc: i32, c: usize, add: bool): void {
  let vacc0_0123 = f32x4.splat(0);
  let vacc0_4567 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const va = v128.load32_splat(a);
    vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(va, v128.load(b)));
    vacc0_4567 = f32x4.add(vacc0_4567, f32x4.mul(va, v128.load(b, 16)));
    a += aks;
    b += ldb;
  }
  storeRow(c, vacc0_0123, vacc0_4567, add);
}

/** C[M,N] (=|+=) Σ_k A(i,k)·B[k,j], A(i,k) at a + i·ars + k·aks (bytes), B [K,N] and C [M,N] row-major. */
function gemmRowStrided(a: usize, ars: usize, aks: usize, b: usize, c: usize, M: i32, N: i32, K: i32, accumulate: i32): void {
  const ldb = <usize>N << 2;
  const ldc = <usize>N << 2;
  if (K == 0) {
    if (!accumulate) for (let i = 0; i < M; i++) memory.fill(c + <usize>i * ldc, 0, ldc);
    return;
  }
  const MM = M & ~3;
  const NN = N & ~7;
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const add = accumulate != 0 || k0 > 0;
    const ak = a + <usize>k0 * aks;
    const bk = b + <usize>k0 * ldb;
    for (let j = 0; j < NN; j += 8) {
      const bj = bk + (<usize>j << 2);
      for (let i = 0; i < MM; i += 4) {
        ukernelNn4x8(ak + <usize>i * ars, ars, aks, bj, ldb, kc, c + <usize>i * ldc + (<usize>j << 2), ldc, add);
      }
      for (let i = MM; i < M; i++) {
        ukernelNn1x8(ak + <usize>i * ars, aks, bj, ldb, kc, c + <usize>i * ldc + (<usize>j << 2), add);
      }
    }
    // columns past a multiple of 8: scalar, same k order
    for (let j = NN; j < N; j++) {
      for (let i = 0; i < M; i++) {
        let s: f32 = 0;
        let ap = ak + <usize>i * ars;
        let bp = bk + (<usize>j << 2);
        for (let k = 0; k < kc; k++) {
          s += load<f32>(ap) * load<f32>(bp);
          ap += aks;
          bp += ldb;
        }
        const cp = c + <usize>i * ldc + (<usize>j << 2);
        store<f32>(cp, add ? load<f32>(cp) + s : s);
      }
    }
  }
}

/** C[M,N] (=|+=) A[M,K] · B[K,N]: the input gradient dX = dY · W of a linear layer. */
export function f32_gemm_nn(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, accumulate: i32): void {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_gemm_nn: negative size");
  assert(((a | b | c) & 3) == 0, "f32_gemm_nn: pointer not 4-byte aligned");
  assert(accumulate == 0 || accumulate == 1, "f32_gemm_nn: accumulate must be 0 or 1");
  if (M == 0 || N == 0) return;
  gemmRowStrided(a, <usize>K << 2, 4, b, c, M, N, K, accumulate);
}

/** C[M,N] (=|+=) A[K,M]ᵀ · B[K,N]: the weight gradient dW += dYᵀ · X of a linear layer. */
export function f32_gemm_tn(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, accumulate: i32): void {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_gemm_tn: negative size");
  assert(((a | b | c) & 3) == 0, "f32_gemm_tn: pointer not 4-byte aligned");
  assert(accumulate == 0 || accumulate == 1, "f32_gemm_tn: accumulate must be 0 or 1");
  if (M == 0 || N == 0) return;
  gemmRowStrided(a, 4, <usize>M << 2, b, c, M, N, K, accumulate);
}
