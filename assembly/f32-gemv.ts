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
function hsum4(vacc0123: v128): f32 {
  return (f32x4.extract_lane(vacc0123, 0) + f32x4.extract_lane(vacc0123, 1)) +
    (f32x4.extract_lane(vacc0123, 2) + f32x4.extract_lane(vacc0123, 3));
}

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
