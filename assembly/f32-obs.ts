// SparseGPT's per-column OBS loop (src/prune/methods/sparsegpt.ts, IST-DASLab/sparsegpt `fasterprune`) on a
// block of rows: given Hinv (the upper Cholesky factor of H⁻¹), every row of W is pruned independently
// inside a column block, so threads may split the rows. Bit-identical to the scalar TypeScript loop it
// replaced: the score w²/d², the error e = (w − q)/d and every update w_c −= e·Hinv[j, c] are computed in
// f64 from the f32 values and rounded once to f32, as the JavaScript arithmetic did (SIMD across columns c,
// which are independent; no FMA).
import { f32_nm_mask } from "./f32-nm";
import { qparams, qround } from "./f32-quant";

// @ts-ignore: decorator
@inline
function score(w: f32, d: f32): f32 {
  const x = <f64>w;
  const dd = <f64>d;
  return <f32>((x * x) / (dd * dd));
}

/** The N:M mask of the m columns from j (block position i) of a row: scores into s, n kept into mask. */
// @ts-ignore: decorator
@inline
function nmMask(wr: usize, hinv: usize, colsB: usize, s: usize, mask: usize, i: i32, j: i32, n: i32, m: i32): void {
  const sg = s + (<usize>i << 2);
  for (let c = 0; c < m; c++) {
    const jc = j + c;
    store<f32>(sg + (<usize>c << 2), score(load<f32>(wr + (<usize>jc << 2)), load<f32>(hinv + <usize>jc * colsB + (<usize>jc << 2))));
  }
  f32_nm_mask(sg, mask + (<usize>i << 2), 1, m, n, m);
}

/**
 * s[r·count + i] = w[r, i1+i]² / Hinv[i1+i, i1+i]² (the unstructured mask scores of a block) for rows
 * [r0, r1); W and Hinv have `cols` columns.
 */
export function f32_obs_scores(w: usize, hinv: usize, cols: i32, s: usize, r0: i32, r1: i32, i1: i32, count: i32): void {
  assert(0 <= r0 && r0 <= r1 && i1 >= 0 && count >= 0 && i1 + count <= cols);
  const colsB = <usize>cols << 2;
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * colsB;
    const sr = s + <usize>r * (<usize>count << 2);
    for (let i = 0; i < count; i++) {
      const j = i1 + i;
      store<f32>(sr + (<usize>i << 2), score(load<f32>(wr + (<usize>j << 2)), load<f32>(hinv + <usize>j * colsB + (<usize>j << 2))));
    }
  }
}

/**
 * The OBS loop over the columns [i1, i1+count) of rows [r0, r1): column j's weight becomes q (0 where
 * pruned, else unchanged — or, quantizing, its value on the integer grid), err[r·ld + i] = (w − q)/Hinv[j,j],
 * and the rest of the block's row moves by −e·Hinv[j, j+1:]. Pruned: mask[r·ld + i] == 0 — given
 * (unstructured, m = 0), or chosen here per group of m columns of the row when the group's first column is
 * reached (N:M, n of every m, f32_nm_mask on the scores written to s at the same positions). ld ≥ count: the
 * row stride of err, s and mask.
 *
 * Quantizing (GPTQ; SparseGPT's joint prune + quantize), qs ≠ 0: a kept weight becomes qround on the grid of its
 * group (assembly/f32-quant.ts; qs, qz [rows][ng], qz = 0 symmetric). group > 0: column j is in group j / group,
 * whose parameters are computed here from the row's current (error-updated) values w[r, j : j+group) when j is
 * the group's first column (group divides count and i1): with a given mask (m = 0: GPTQ on a pruned operator's
 * support) only the kept ones, since the pruned ones will be +0.0; under N:M, whose masks are chosen as the
 * sweep goes, all of them (as the references fit a grid on the whole group). On stories260K (SparseGPT 2:4 +
 * w4g64, 16 calibration paragraphs, 50 eval paragraphs) fitting N:M grids on provisional masks gave 39.33 and on
 * masks chosen at the group's start 43.77, against 36.89 for this (one run each, noisy: the masks of later layers
 * move with every change). group = 0: the parameters are given, column j's
 * group is gidx[j] (i32; per channel, or act-order's static groups).
 */
export function f32_obs_block(
  w: usize, hinv: usize, cols: i32, err: usize, s: usize, mask: usize, ld: i32,
  r0: i32, r1: i32, i1: i32, count: i32, n: i32, m: i32,
  qs: usize, qz: usize, gidx: usize, ng: i32, group: i32, qmin: i32, qmax: i32,
): void {
  assert(0 <= r0 && r0 <= r1 && i1 >= 0 && count >= 0 && ld >= count && i1 + count <= cols && m >= 0 && (m == 0 || count % m == 0));
  assert(qs == 0 || (group >= 0 && ng > 0 && qmin < qmax && (group > 0 || gidx != 0)));
  assert(qs == 0 || group == 0 || (i1 % group == 0 && count % group == 0 && (m == 0 || group % m == 0)));
  const flo = <f32>qmin;
  const fhi = <f32>qmax;
  const colsB = <usize>cols << 2;
  const i2 = i1 + count;
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * colsB;
    const off = <usize>r * (<usize>ld << 2);
    for (let i = 0; i < count; i++) {
      const j = i1 + i;
      const hrow = hinv + <usize>j * colsB;
      const qgroup = qs != 0 && group > 0 && j % group == 0;
      if (m > 0 && i % m == 0) nmMask(wr, hinv, colsB, s + off, mask + off, i, j, n, m);
      const d = <f64>load<f32>(hrow + (<usize>j << 2));
      const wv = <f64>load<f32>(wr + (<usize>j << 2));
      let q: f64 = load<f32>(mask + off + (<usize>i << 2)) == 0 ? 0 : wv;
      if (qs != 0) {
        const g = group > 0 ? j / group : load<i32>(gidx + (<usize>j << 2));
        const at = (<usize>r * <usize>ng + <usize>g) << 2;
        if (qgroup) qparams(wr + (<usize>j << 2), min(group, cols - j), qmin, qmax, qs + at, qz == 0 ? 0 : qz + at, m == 0 ? mask + off + (<usize>i << 2) : 0);
        if (q != 0) q = <f64>qround(<f32>wv, load<f32>(qs + at), qz == 0 ? 0 : load<f32>(qz + at), flo, fhi);
      }
      const e = (wv - q) / d;
      store<f32>(err + off + (<usize>i << 2), <f32>e);
      if (e != 0) {
        const ve = f64x2.splat(e);
        let c = j + 1;
        for (; c + 4 <= i2; c += 4) {
          const pw = wr + (<usize>c << 2);
          const ph = hrow + (<usize>c << 2);
          const lo = f64x2.sub(f64x2.promote_low_f32x4(v128.load64_zero(pw)), f64x2.mul(ve, f64x2.promote_low_f32x4(v128.load64_zero(ph))));
          const hi = f64x2.sub(f64x2.promote_low_f32x4(v128.load64_zero(pw, 8)), f64x2.mul(ve, f64x2.promote_low_f32x4(v128.load64_zero(ph, 8))));
          v128.store64_lane(pw, f32x4.demote_f64x2_zero(lo), 0);
          v128.store64_lane(pw, f32x4.demote_f64x2_zero(hi), 0, 8);
        }
        for (; c < i2; c++) {
          const pw = wr + (<usize>c << 2);
          store<f32>(pw, <f32>(<f64>load<f32>(pw) - e * <f64>load<f32>(hrow + (<usize>c << 2))));
        }
      }
      store<f32>(wr + (<usize>j << 2), <f32>q);
    }
  }
}
