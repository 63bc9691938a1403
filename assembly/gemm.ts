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

/** Bytes of `pack` scratch f32_gemm_nt needs: one NC x KC block of W padded to whole 8-column panels, plus 4 x KC of X. */
export function f32_gemm_nt_scratch(M: i32, N: i32, K: i32): i32 {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_gemm_nt_scratch: negative size");
  const nc = min(N, NC);
  const kc = min(K, KC);
  return (((nc + NR - 1) & ~(NR - 1)) + MR) * kc * 4;
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

// @ts-ignore: decorator
@inline
function storeRow(c: usize, vacc0123: v128, vacc4567: v128, nr: i32, add: bool): void {
  if (nr == NR) {
    if (add) {
      vacc0123 = f32x4.add(vacc0123, v128.load(c));
      vacc4567 = f32x4.add(vacc4567, v128.load(c, 16));
    }
    v128.store(c, vacc0123);
    v128.store(c, vacc4567, 16);
    return;
  }
  // Partial panel: spill the 8 lanes one by one (at most 7 stores; only on the last panel of a row).
  for (let j = 0; j < nr; j++) {
    let v: f32;
    switch (j) {
      case 0: v = f32x4.extract_lane(vacc0123, 0); break;
      case 1: v = f32x4.extract_lane(vacc0123, 1); break;
      case 2: v = f32x4.extract_lane(vacc0123, 2); break;
      case 3: v = f32x4.extract_lane(vacc0123, 3); break;
      case 4: v = f32x4.extract_lane(vacc4567, 0); break;
      case 5: v = f32x4.extract_lane(vacc4567, 1); break;
      case 6: v = f32x4.extract_lane(vacc4567, 2); break;
      default: v = f32x4.extract_lane(vacc4567, 3); break;
    }
    const p = c + (<usize>j << 2);
    if (add) v += load<f32>(p);
    store<f32>(p, v);
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
      for (let i = 0; i < MM; i += MR) {
        packX(xk + <usize>i * ldx, ldx, kc, apack);
        const c = yn + <usize>i * ldy;
        for (let p = 0; p < np; p++) {
          ukernel4x8<f32, u8>(apack, pack + <usize>p * panelBytes, kc, c + (<usize>p << 5), ldy, min(NR, nc - p * NR), add);
        }
      }
      for (let i = MM; i < M; i++) {
        const a = xk + <usize>i * ldx;
        const c = yn + <usize>i * ldy;
        for (let p = 0; p < np; p++) {
          ukernel1x8<f32, u8>(a, pack + <usize>p * panelBytes, kc, c + (<usize>p << 5), min(NR, nc - p * NR), add);
        }
      }
    }
  }
}

// ---- prepacked weights: Y[M,N] = X[M,K] · Wᵀ with W in p8 panels (assembly/gemv.ts), f32 / bf16 / f16 --------
//
// The weights are packed once at load (src/model/packed.ts), so a call packs only X. Per K block of KC:
//   for m0 in steps of MC rows: pack the 4-row strips of X[m0:m0+MC, k0:k0+KC] ([KC][4] each, ≤ 256 KB, L2)
//     for every panel p: its K-block slice (KC·8 weights, 8 KB f32 / 4 KB half, L1) against every strip:
//       the 4x8 micro-kernel (as f32_gemm_nt's, weights widened in registers), rows past a multiple of 4
//       through the 1x8 kernel straight from X.
// So W streams once per call per MC rows of X (batch ≤ 256: once), not once per 4-row strip.
// Summation order per output: K blocks of KC in order, k in order inside: for f32 weights in the baseline
// build the same sums as f32_gemm_nt (bit-identical); the relaxed build fuses each multiply-add.

// @ts-ignore: decorator
@inline const MC = 256;

/** Bytes of `pack` scratch *_gemm_p8_nt needs: the 4-row strips of up to MC rows of one K block of X. */
export function gemm_p8_nt_scratch(M: i32, K: i32): i32 {
  assert(M >= 0 && K >= 0, "gemm_p8_nt_scratch: negative size");
  return max(16, min(M & ~3, MC) * min(K, KC) * 4);
}

/** c + a·b, fused in the relaxed build only when F is i8 (see ukernel4x8). */
// @ts-ignore: decorator
@inline
function mac<F>(a: v128, b: v128, c: v128): v128 {
  if (isSigned<F>()) return madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/**
 * 4x8 micro-kernel: C[0:4, 0:nr] (=|+=) Apacked[0:kc][0:4] · panel[0:kc][0:8] (one k slice of 8 weights of type D
 * after another), C rows ldc bytes apart. F: u8 = multiply then add in every build (f32_gemm_nt, the pruning
 * GEMM: the same sums in both builds), i8 = fused in the relaxed build (the inference GEMMs).
 * Measured (Node 20, Xeon SPR, baseline build): not unrolling beats unroll 2 and 4 (~43 vs ~36 GFLOP/s), and
 * 4x8 beats 3x8, 5x8 and 6x8 (register pressure: V8 has 16 xmm registers on x64).
 */
function ukernel4x8<D, F>(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, nr: i32, add: bool): void {
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
  storeRow(c, vacc0_0123, vacc0_4567, nr, add);
  storeRow(c + ldc, vacc1_0123, vacc1_4567, nr, add);
  storeRow(c + 2 * ldc, vacc2_0123, vacc2_4567, nr, add);
  storeRow(c + 3 * ldc, vacc3_0123, vacc3_4567, nr, add);
}

/** 1x8 micro-kernel for the rows past a multiple of 4 (a: the row of X itself, k-contiguous). */
function ukernel1x8<D, F>(a: usize, bp: usize, kc: i32, c: usize, nr: i32, add: bool): void {
  let vacc0_0123 = f32x4.splat(0);
  let vacc0_4567 = f32x4.splat(0);
  const sb = sliceBytes<D>();
  for (let bend = bp + <usize>kc * sb; bp < bend; bp += sb) {
    const va = v128.load32_splat(a);
    vacc0_0123 = mac<F>(va, rows0123<D>(bp, 0), vacc0_0123);
    vacc0_4567 = mac<F>(va, rows4567<D>(bp, 0), vacc0_4567);
    a += 4;
  }
  storeRow(c, vacc0_0123, vacc0_4567, nr, add);
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
  const MM = M & ~3;
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const add = k0 > 0;
    const stripBytes = <usize>kc << 4;
    const xk = x + (<usize>k0 << 2);
    const wk = w + <usize>k0 * sb;
    for (let m0 = 0; m0 < M; m0 += MC) {
      const m1 = min(M, m0 + MC);
      const s1 = min(m1, MM); // strips of 4 in [m0, s1)
      for (let i = m0; i < s1; i += MR) packX(xk + <usize>i * ldx, ldx, kc, pack + <usize>((i - m0) >> 2) * stripBytes);
      for (let p = 0; p < NP; p++) {
        const bp = wk + <usize>p * pb;
        const nr = min(NR, N - (p << 3));
        const yp = y + (<usize>p << 5);
        for (let i = m0; i < s1; i += MR) {
          ukernel4x8<D, i8>(pack + <usize>((i - m0) >> 2) * stripBytes, bp, kc, yp + <usize>i * ldy, ldy, nr, add);
        }
        for (let i = max(s1, m0); i < m1; i++) ukernel1x8<D, i8>(xk + <usize>i * ldx, bp, kc, yp + <usize>i * ldy, nr, add);
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
