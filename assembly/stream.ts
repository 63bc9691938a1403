// The ceilings of `wasprune bench kernels`, measured in the same run as the kernels they bound:
//  - the streaming read: a plain WASM SIMD read of a buffer, four f32x4 accumulators, 64 bytes a step, nothing
//    else. A GEMV that reads its weights once can at best match it;
//  - the compute ceiling: f32x4 multiply-adds on registers only (no memory), ten independent chains, in the
//    GEMMs' own instructions. A GEMM can at best match it — where the engine compiles the loop as well as the
//    GEMMs (Node 20's V8 does; Node 24's runs it at ~40% of that, slower than the GEMMs, and bench kernels says so).

import { madd } from "./simd";

/** Σ of the f32 values in [p, p + bytes) (bytes a multiple of 64, p 16-aligned), in 4 lanes x 4 accumulators. */
export function f32_stream_sum(p: usize, bytes: usize): f32 {
  assert((p & 15) == 0 && (bytes & 63) == 0, "f32_stream_sum: p must be 16-aligned and bytes a multiple of 64");
  let vacc0 = f32x4.splat(0);
  let vacc1 = f32x4.splat(0);
  let vacc2 = f32x4.splat(0);
  let vacc3 = f32x4.splat(0);
  for (const end = p + bytes; p < end; p += 64) {
    vacc0 = f32x4.add(vacc0, v128.load(p));
    vacc1 = f32x4.add(vacc1, v128.load(p, 16));
    vacc2 = f32x4.add(vacc2, v128.load(p, 32));
    vacc3 = f32x4.add(vacc3, v128.load(p, 48));
  }
  const vsum = f32x4.add(f32x4.add(vacc0, vacc1), f32x4.add(vacc2, vacc3));
  return (f32x4.extract_lane(vsum, 0) + f32x4.extract_lane(vsum, 1)) + (f32x4.extract_lane(vsum, 2) + f32x4.extract_lane(vsum, 3));
}

/**
 * `steps` rounds of 10 independent f32x4 multiply-adds on registers (80 flops a round, counting a multiply and an
 * add as two): fused = 0 multiply then add (f32_gemm_strided, f32_gemm_nt: every build), fused = 1 the inference
 * GEMMs' `madd` (fused in the relaxed build). Returns a sum of the chains so the work cannot be dropped.
 */
export function f32_compute_peak(steps: i32, x: f32, fused: i32): f32 {
  const va = f32x4.splat(x);
  const vb = f32x4.splat(<f32>0.999);
  let v0 = f32x4.splat(0), v1 = f32x4.splat(1), v2 = f32x4.splat(2), v3 = f32x4.splat(3), v4 = f32x4.splat(4);
  let v5 = f32x4.splat(5), v6 = f32x4.splat(6), v7 = f32x4.splat(7), v8 = f32x4.splat(8), v9 = f32x4.splat(9);
  if (fused != 0) {
    for (let i = 0; i < steps; i++) {
      v0 = madd(v0, vb, va); v1 = madd(v1, vb, va); v2 = madd(v2, vb, va); v3 = madd(v3, vb, va); v4 = madd(v4, vb, va);
      v5 = madd(v5, vb, va); v6 = madd(v6, vb, va); v7 = madd(v7, vb, va); v8 = madd(v8, vb, va); v9 = madd(v9, vb, va);
    }
  } else {
    for (let i = 0; i < steps; i++) {
      v0 = f32x4.add(f32x4.mul(v0, vb), va); v1 = f32x4.add(f32x4.mul(v1, vb), va);
      v2 = f32x4.add(f32x4.mul(v2, vb), va); v3 = f32x4.add(f32x4.mul(v3, vb), va);
      v4 = f32x4.add(f32x4.mul(v4, vb), va); v5 = f32x4.add(f32x4.mul(v5, vb), va);
      v6 = f32x4.add(f32x4.mul(v6, vb), va); v7 = f32x4.add(f32x4.mul(v7, vb), va);
      v8 = f32x4.add(f32x4.mul(v8, vb), va); v9 = f32x4.add(f32x4.mul(v9, vb), va);
    }
  }
  const s = f32x4.add(f32x4.add(f32x4.add(v0, v1), f32x4.add(v2, v3)), f32x4.add(f32x4.add(v4, v5), f32x4.add(v6, v7)));
  const t = f32x4.add(s, f32x4.add(v8, v9));
  return (f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1)) + (f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3));
}
