// f32 GEMV: y[N] = W[N,K] · x[K] (+ y). Memory-bound: every weight is read once, so the kernel's job is to
// keep the loads streaming. Four rows are processed together so each x vector load serves four rows;
// each row keeps two f32x4 accumulators (k and k+4) to hide add latency. Pointers need only be 4-byte
// aligned (rows of odd K start unaligned; v128.load allows it).
//
// Summation order (deterministic): per row, lanes j of vacc0123/vacc4567 hold Σ over k ≡ j (mod 8) of the
// vector part; they are reduced as ((a0+a4) + (a1+a5)) + ((a2+a6) + (a3+a7)), then the scalar tail k ≥ K8
// is added in order.

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
  let n = 0;
  for (; n + 4 <= N; n += 4) {
    const w0 = w + <usize>n * rowBytes;
    const w1 = w0 + rowBytes;
    const w2 = w1 + rowBytes;
    const w3 = w2 + rowBytes;
    let vacc0_0123 = f32x4.splat(0);
    let vacc0_4567 = f32x4.splat(0);
    let vacc1_0123 = f32x4.splat(0);
    let vacc1_4567 = f32x4.splat(0);
    let vacc2_0123 = f32x4.splat(0);
    let vacc2_4567 = f32x4.splat(0);
    let vacc3_0123 = f32x4.splat(0);
    let vacc3_4567 = f32x4.splat(0);
    for (let off: usize = 0, end = <usize>K8 << 2; off < end; off += 32) {
      const vx0123 = v128.load(x + off);
      const vx4567 = v128.load(x + off, 16);
      vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(v128.load(w0 + off), vx0123));
      vacc0_4567 = f32x4.add(vacc0_4567, f32x4.mul(v128.load(w0 + off, 16), vx4567));
      vacc1_0123 = f32x4.add(vacc1_0123, f32x4.mul(v128.load(w1 + off), vx0123));
      vacc1_4567 = f32x4.add(vacc1_4567, f32x4.mul(v128.load(w1 + off, 16), vx4567));
      vacc2_0123 = f32x4.add(vacc2_0123, f32x4.mul(v128.load(w2 + off), vx0123));
      vacc2_4567 = f32x4.add(vacc2_4567, f32x4.mul(v128.load(w2 + off, 16), vx4567));
      vacc3_0123 = f32x4.add(vacc3_0123, f32x4.mul(v128.load(w3 + off), vx0123));
      vacc3_4567 = f32x4.add(vacc3_4567, f32x4.mul(v128.load(w3 + off, 16), vx4567));
    }
    let s0 = hsum(vacc0_0123, vacc0_4567);
    let s1 = hsum(vacc1_0123, vacc1_4567);
    let s2 = hsum(vacc2_0123, vacc2_4567);
    let s3 = hsum(vacc3_0123, vacc3_4567);
    for (let k = K8; k < K; k++) {
      const off = <usize>k << 2;
      const xk = load<f32>(x + off);
      s0 += load<f32>(w0 + off) * xk;
      s1 += load<f32>(w1 + off) * xk;
      s2 += load<f32>(w2 + off) * xk;
      s3 += load<f32>(w3 + off) * xk;
    }
    const yp = y + (<usize>n << 2);
    if (accumulate) {
      s0 += load<f32>(yp);
      s1 += load<f32>(yp, 4);
      s2 += load<f32>(yp, 8);
      s3 += load<f32>(yp, 12);
    }
    store<f32>(yp, s0);
    store<f32>(yp, s1, 4);
    store<f32>(yp, s2, 8);
    store<f32>(yp, s3, 12);
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
