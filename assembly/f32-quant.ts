// Integer quantization of f32 weights as compressed-tensors defines it (quantization/utils calculate_qparams and
// lifecycle/forward quantize/dequantize), used by round-to-nearest and by the GPTQ / joint SparseGPT OBS loop
// (assembly/f32-obs.ts). Integers are signed in [qmin, qmax] (int4: [-8, 7], int8: [-128, 127]); per (row,
// group): lo = min(min w, 0), hi = max(max w, 0); symmetric: s = max(|lo|, hi) / ((qmax − qmin)/2), z = 0;
// asymmetric: s = (hi − lo)/(qmax − qmin), z = round(clamp(qmin − lo/s, qmin, qmax)); s ≥ f32 eps. A weight
// becomes q = clamp(round(w/s + z), qmin, qmax) (round half to even), dequantized (q − z)·s — every zero stays
// +0.0. All arithmetic is f32, as upstream's in a float32 model. A zero-point pointer of 0 means symmetric.

// @ts-ignore: decorator
@inline const EPS: f32 = 1.1920928955078125e-7;

/**
 * Scale (and zero point, qz ≠ 0) of the `count` values at p into qs / qz; with a mask (mp ≠ 0, f32 0/1 at the
 * same positions) only the kept values count (a pruned weight will be +0.0, and 0 is always on the grid).
 */
// @ts-ignore: decorator
@inline
export function qparams(p: usize, count: i32, qmin: i32, qmax: i32, qs: usize, qz: usize, mp: usize = 0): void {
  let lo: f32 = 0;
  let hi: f32 = 0;
  for (let i = 0; i < count; i++) {
    const v = mp != 0 && load<f32>(mp + (<usize>i << 2)) == 0 ? <f32>0 : load<f32>(p + (<usize>i << 2));
    lo = min(lo, v);
    hi = max(hi, v);
  }
  const range = <f32>(qmax - qmin);
  if (qz == 0) {
    store<f32>(qs, max(max(-lo, hi) / (range / 2), EPS));
    return;
  }
  const s = max((hi - lo) / range, EPS);
  store<f32>(qs, s);
  store<f32>(qz, nearest(min(max(<f32>qmin - lo / s, <f32>qmin), <f32>qmax)));
}

/** The dequantized value of w on the grid (s, z). */
// @ts-ignore: decorator
@inline
export function qround(w: f32, s: f32, z: f32, qmin: f32, qmax: f32): f32 {
  const q = min(max(nearest(w / s + z), qmin), qmax);
  // + 0: a small negative weight rounds to −0 (q = −0 when z = 0); a zero weight is +0.0
  return (q - z) * s + 0;
}

/**
 * Parameters of group g for rows [0, rows): the values w[r, c0 : c0+count) (row stride `cols`) give
 * qs[r·ng + g] and (qz ≠ 0) qz[r·ng + g].
 */
export function f32_quant_params(w: usize, cols: i32, rows: i32, c0: i32, count: i32, qs: usize, qz: usize, ng: i32, g: i32, qmin: i32, qmax: i32): void {
  assert(rows >= 0 && c0 >= 0 && count >= 0 && c0 + count <= cols && g >= 0 && g < ng && qmin < qmax);
  for (let r = 0; r < rows; r++) {
    const at = (<usize>r * <usize>ng + <usize>g) << 2;
    qparams(w + ((<usize>r * <usize>cols + <usize>c0) << 2), count, qmin, qmax, qs + at, qz == 0 ? 0 : qz + at);
  }
}

/**
 * Round-to-nearest in place: w[r, j] (rows × cols) onto the grid of its group j / group (qs, qz [rows][ng],
 * ng = ceil(cols / group); qz = 0: symmetric).
 */
export function f32_quant_rows(w: usize, cols: i32, rows: i32, qs: usize, qz: usize, ng: i32, group: i32, qmin: i32, qmax: i32): void {
  assert(rows >= 0 && cols >= 0 && group > 0 && ng * group >= cols && qmin < qmax);
  const lo = <f32>qmin;
  const hi = <f32>qmax;
  for (let r = 0; r < rows; r++) {
    const wr = w + ((<usize>r * <usize>cols) << 2);
    for (let j = 0; j < cols; j++) {
      const at = (<usize>r * <usize>ng + <usize>(j / group)) << 2;
      const z: f32 = qz == 0 ? 0 : load<f32>(qz + at);
      const p = wr + (<usize>j << 2);
      store<f32>(p, qround(load<f32>(p), load<f32>(qs + at), z, lo, hi));
    }
  }
}
