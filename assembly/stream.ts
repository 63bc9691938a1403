// The streaming-read ceiling of `wasprune bench kernels`: a plain WASM SIMD read of a buffer, four f32x4
// accumulators, 64 bytes a step, nothing else. A GEMV that reads its weights once can at best match it, so the
// benchmark measures it in the same run and states the GEMVs as a fraction of it.

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
