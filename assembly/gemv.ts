import { hsum4, madd, rows0123, rows4567, sliceBytes } from "./simd";

// f32 GEMV: y[N] = W[N,K] · x[K] (+ y). Memory-bound: every weight is read once, so the kernel's job is to
// keep loads streaming. Eight rows are processed together: each x vector load serves eight rows, and eight
// concurrent row streams give the memory system more requests in flight (measured here, 4096x4096 with W
// out of cache: 4 rows ~13.2 GB/s, 8 rows ~14.0, 12 rows ~11 (spills); one-thread memchr reads ~12 GB/s).
// Pointers need only be 4-byte aligned (rows of odd K start unaligned; v128.load allows it).
//
// Summation order (deterministic): per row, lane j of vacc{r}_0123 holds Σ over k ≡ j (mod 4) of the vector
// part, reduced as (a0+a1) + (a2+a3), then the scalar tail k ≥ K4 is added in order. Rows past a multiple
// of 8 use one row at a time with two accumulators (k mod 8), reduced ((a0+a4)+(a1+a5)) + ((a2+a6)+(a3+a7)).

// @ts-ignore: decorator
@inline
function hsum(vacc0123: v128, vacc4567: v128): f32 {
  const vsum0123 = f32x4.add(vacc0123, vacc4567);
  return (f32x4.extract_lane(vsum0123, 0) + f32x4.extract_lane(vsum0123, 1)) +
    (f32x4.extract_lane(vsum0123, 2) + f32x4.extract_lane(vsum0123, 3));
}

/** y[N] = W[N,K] · x[K] (+ y when accumulate = 1). */
export function f32_gemv(w: usize, x: usize, y: usize, N: i32, K: i32, accumulate: i32): void {
  assert(N >= 0 && K >= 0, "f32_gemv: negative size");
  assert(((w | x | y) & 3) == 0, "f32_gemv: pointer not 4-byte aligned");
  assert(accumulate == 0 || accumulate == 1, "f32_gemv: accumulate must be 0 or 1");
  const rowBytes = <usize>K << 2;
  const K8 = K & ~7;
  const K4 = K & ~3;
  let n = 0;
  for (; n + 8 <= N; n += 8) {
    const w0 = w + <usize>n * rowBytes;
    const w1 = w0 + rowBytes;
    const w2 = w1 + rowBytes;
    const w3 = w2 + rowBytes;
    const w4 = w3 + rowBytes;
    const w5 = w4 + rowBytes;
    const w6 = w5 + rowBytes;
    const w7 = w6 + rowBytes;
    let vacc0_0123 = f32x4.splat(0);
    let vacc1_0123 = f32x4.splat(0);
    let vacc2_0123 = f32x4.splat(0);
    let vacc3_0123 = f32x4.splat(0);
    let vacc4_0123 = f32x4.splat(0);
    let vacc5_0123 = f32x4.splat(0);
    let vacc6_0123 = f32x4.splat(0);
    let vacc7_0123 = f32x4.splat(0);
    for (let off: usize = 0, end = <usize>K4 << 2; off < end; off += 16) {
      const vx0123 = v128.load(x + off);
      vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(v128.load(w0 + off), vx0123));
      vacc1_0123 = f32x4.add(vacc1_0123, f32x4.mul(v128.load(w1 + off), vx0123));
      vacc2_0123 = f32x4.add(vacc2_0123, f32x4.mul(v128.load(w2 + off), vx0123));
      vacc3_0123 = f32x4.add(vacc3_0123, f32x4.mul(v128.load(w3 + off), vx0123));
      vacc4_0123 = f32x4.add(vacc4_0123, f32x4.mul(v128.load(w4 + off), vx0123));
      vacc5_0123 = f32x4.add(vacc5_0123, f32x4.mul(v128.load(w5 + off), vx0123));
      vacc6_0123 = f32x4.add(vacc6_0123, f32x4.mul(v128.load(w6 + off), vx0123));
      vacc7_0123 = f32x4.add(vacc7_0123, f32x4.mul(v128.load(w7 + off), vx0123));
    }
    let s0 = hsum4(vacc0_0123);
    let s1 = hsum4(vacc1_0123);
    let s2 = hsum4(vacc2_0123);
    let s3 = hsum4(vacc3_0123);
    let s4 = hsum4(vacc4_0123);
    let s5 = hsum4(vacc5_0123);
    let s6 = hsum4(vacc6_0123);
    let s7 = hsum4(vacc7_0123);
    for (let k = K4; k < K; k++) {
      const off = <usize>k << 2;
      const xk = load<f32>(x + off);
      s0 += load<f32>(w0 + off) * xk;
      s1 += load<f32>(w1 + off) * xk;
      s2 += load<f32>(w2 + off) * xk;
      s3 += load<f32>(w3 + off) * xk;
      s4 += load<f32>(w4 + off) * xk;
      s5 += load<f32>(w5 + off) * xk;
      s6 += load<f32>(w6 + off) * xk;
      s7 += load<f32>(w7 + off) * xk;
    }
    const yp = y + (<usize>n << 2);
    if (accumulate) {
      s0 += load<f32>(yp, 0);
      s1 += load<f32>(yp, 4);
      s2 += load<f32>(yp, 8);
      s3 += load<f32>(yp, 12);
      s4 += load<f32>(yp, 16);
      s5 += load<f32>(yp, 20);
      s6 += load<f32>(yp, 24);
      s7 += load<f32>(yp, 28);
    }
    store<f32>(yp, s0, 0);
    store<f32>(yp, s1, 4);
    store<f32>(yp, s2, 8);
    store<f32>(yp, s3, 12);
    store<f32>(yp, s4, 16);
    store<f32>(yp, s5, 20);
    store<f32>(yp, s6, 24);
    store<f32>(yp, s7, 28);
  }
  for (; n < N; n++) {
    const w0 = w + <usize>n * rowBytes;
    let vacc0_0123 = f32x4.splat(0);
    let vacc0_4567 = f32x4.splat(0);
    for (let off: usize = 0, end = <usize>K8 << 2; off < end; off += 32) {
      vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(v128.load(w0 + off), v128.load(x + off)));
      vacc0_4567 = f32x4.add(vacc0_4567, f32x4.mul(v128.load(w0 + off, 16), v128.load(x + off, 16)));
    }
    let s0 = hsum(vacc0_0123, vacc0_4567);
    for (let k = K8; k < K; k++) {
      const off = <usize>k << 2;
      s0 += load<f32>(w0 + off) * load<f32>(x + off);
    }
    const yp = y + (<usize>n << 2);
    if (accumulate) s0 += load<f32>(yp);
    store<f32>(yp, s0);
  }
}

// ---- packed panels ("p8"): the layout of inference weights (src/model/packed.ts packs it once at load) ----
//
// W [N,K] as NP = ceil(N/8) panels of 8 rows, each panel K-major: panel p holds, for k = 0..K-1, the 8 weights
// W[8p..8p+8, k] (rows past N are zero). f32: [NP][K][8] in row order. Half precision (bf16 = u16, f16 = i16):
// [NP][K][8] 16-bit values in the order r0 r4 r1 r5 r2 r6 r3 r7, so one 16-byte load widens to rows 0..3 (the
// even elements) and rows 4..7 (the odd ones) with one or two ops each (assembly/simd.ts).
//
// Why panels: the GEMV then reads one sequential stream per panel (a row-major GEMV reads 8 rows K·4 bytes
// apart, 8 streams), a broadcast of x[k] serves 8 rows, and the GEMM (gemm.ts, *_gemm_p8_nt) reads the same
// panels as its packed B operand, so the weights are packed once at load and never per call.
//
// GEMV: two panels (16 rows) per step, k in steps of 2: 8 accumulators (rows 0..3 / 4..7 of each panel, k even /
// k odd). Summation order per output (deterministic): Σ over even k in order (an odd K's last k goes there
// too) + Σ over odd k in order. A lone last panel is summed the same way, so results do not depend on how rows
// are split across threads as long as splits fall on panel boundaries (multiples of 8 rows).

/** y[n..n+8) = lanes of v0123 ++ v4567, rows < N only. */
// @ts-ignore: decorator
@inline
function storePanel(y: usize, n: i32, N: i32, v0123: v128, v4567: v128): void {
  const yp = y + (<usize>n << 2);
  if (n + 8 <= N) {
    v128.store(yp, v0123);
    v128.store(yp, v4567, 16);
    return;
  }
  for (let j = 0; j < N - n; j++) {
    let v: f32;
    switch (j) {
      case 0: v = f32x4.extract_lane(v0123, 0); break;
      case 1: v = f32x4.extract_lane(v0123, 1); break;
      case 2: v = f32x4.extract_lane(v0123, 2); break;
      case 3: v = f32x4.extract_lane(v0123, 3); break;
      case 4: v = f32x4.extract_lane(v4567, 0); break;
      case 5: v = f32x4.extract_lane(v4567, 1); break;
      default: v = f32x4.extract_lane(v4567, 2); break;
    }
    store<f32>(yp + (<usize>j << 2), v);
  }
}

function gemvP8<D>(w: usize, x: usize, y: usize, N: i32, K: i32): void {
  const sb = sliceBytes<D>();
  const pb = <usize>K * sb;
  const NP = (N + 7) >> 3;
  const K2 = K & ~1;
  let p = 0;
  for (; p + 2 <= NP; p += 2) {
    let wp = w + <usize>p * pb;
    let vaccA0 = f32x4.splat(0), vaccB0 = f32x4.splat(0), vaccA1 = f32x4.splat(0), vaccB1 = f32x4.splat(0);
    let vaccC0 = f32x4.splat(0), vaccD0 = f32x4.splat(0), vaccC1 = f32x4.splat(0), vaccD1 = f32x4.splat(0);
    for (let xp = x, xe = x + (<usize>K2 << 2); xp < xe; xp += 8) {
      const vx0 = v128.load32_splat(xp);
      const vx1 = v128.load32_splat(xp, 4);
      const wq = wp + pb;
      vaccA0 = madd(vx0, rows0123<D>(wp, 0), vaccA0);
      vaccB0 = madd(vx0, rows4567<D>(wp, 0), vaccB0);
      vaccC0 = madd(vx0, rows0123<D>(wq, 0), vaccC0);
      vaccD0 = madd(vx0, rows4567<D>(wq, 0), vaccD0);
      vaccA1 = madd(vx1, rows0123<D>(wp, 16), vaccA1);
      vaccB1 = madd(vx1, rows4567<D>(wp, 16), vaccB1);
      vaccC1 = madd(vx1, rows0123<D>(wq, 16), vaccC1);
      vaccD1 = madd(vx1, rows4567<D>(wq, 16), vaccD1);
      wp += sb << 1;
    }
    if (K2 < K) {
      const vx0 = v128.load32_splat(x + (<usize>K2 << 2));
      vaccA0 = madd(vx0, rows0123<D>(wp, 0), vaccA0);
      vaccB0 = madd(vx0, rows4567<D>(wp, 0), vaccB0);
      vaccC0 = madd(vx0, rows0123<D>(wp + pb, 0), vaccC0);
      vaccD0 = madd(vx0, rows4567<D>(wp + pb, 0), vaccD0);
    }
    storePanel(y, p << 3, N, f32x4.add(vaccA0, vaccA1), f32x4.add(vaccB0, vaccB1));
    storePanel(y, (p + 1) << 3, N, f32x4.add(vaccC0, vaccC1), f32x4.add(vaccD0, vaccD1));
  }
  if (p < NP) {
    let wp = w + <usize>p * pb;
    let vaccA0 = f32x4.splat(0), vaccB0 = f32x4.splat(0), vaccA1 = f32x4.splat(0), vaccB1 = f32x4.splat(0);
    for (let xp = x, xe = x + (<usize>K2 << 2); xp < xe; xp += 8) {
      const vx0 = v128.load32_splat(xp);
      const vx1 = v128.load32_splat(xp, 4);
      vaccA0 = madd(vx0, rows0123<D>(wp, 0), vaccA0);
      vaccB0 = madd(vx0, rows4567<D>(wp, 0), vaccB0);
      vaccA1 = madd(vx1, rows0123<D>(wp, 16), vaccA1);
      vaccB1 = madd(vx1, rows4567<D>(wp, 16), vaccB1);
      wp += sb << 1;
    }
    if (K2 < K) {
      const vx0 = v128.load32_splat(x + (<usize>K2 << 2));
      vaccA0 = madd(vx0, rows0123<D>(wp, 0), vaccA0);
      vaccB0 = madd(vx0, rows4567<D>(wp, 0), vaccB0);
    }
    storePanel(y, p << 3, N, f32x4.add(vaccA0, vaccA1), f32x4.add(vaccB0, vaccB1));
  }
}

// @ts-ignore: decorator
@inline
function checkGemvP8(w: usize, x: usize, y: usize, N: i32, K: i32): void {
  assert(N >= 0 && K >= 0, "gemv_p8: negative size");
  assert((w & 15) == 0 && ((x | y) & 3) == 0, "gemv_p8: w must be 16-aligned, x and y 4-aligned");
}

/** y[N] = W·x for W [N,K] f32 in p8 panels (w 16-aligned; x, y 4-aligned). */
export function f32_gemv_p8(w: usize, x: usize, y: usize, N: i32, K: i32): void {
  checkGemvP8(w, x, y, N, K);
  gemvP8<f32>(w, x, y, N, K);
}

/** y[N] = W·x for W [N,K] bf16 in p8 panels (half order r0 r4 r1 r5 …), f32 accumulation. */
export function bf16_gemv_p8(w: usize, x: usize, y: usize, N: i32, K: i32): void {
  checkGemvP8(w, x, y, N, K);
  gemvP8<u16>(w, x, y, N, K);
}

/** y[N] = W·x for W [N,K] f16 in p8 panels (half order r0 r4 r1 r5 …), f32 accumulation. */
export function f16_gemv_p8(w: usize, x: usize, y: usize, N: i32, K: i32): void {
  checkGemvP8(w, x, y, N, K);
  gemvP8<i16>(w, x, y, N, K);
}
