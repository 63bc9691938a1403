// Mask selection for pruning patterns: per-row top-k (unstructured) and top-N of every M consecutive
// entries (N:M). Scores are read as |score| (the sign bit is cleared), so any non-negative score works
// (|w|, |w|·‖x‖, w²/[H⁻¹]²); masks are f32 0/1 so they can be multiplied in.
//
// Ties are broken deterministically by position: among equal scores the lower index is kept. The plain
// reference is "sort the indices by (score desc, index asc) and keep the first k".
//
// top-k: a radix select on the bit patterns (non-negative f32 order = u32 order): 31 SIMD counting
// passes find the k-th largest value T, then one ordered pass keeps every s > T and the first
// k − #{s > T} entries equal to T.
// N:M: rank_i = #{j in group: s_j > s_i or (s_j = s_i and j < i)}, keep iff rank_i < N. For M a multiple
// of 4 the ranks of 4 lanes are counted at once against splats of every member (M²/4 compares a group).

// @ts-ignore: decorator
@inline const ABS: u32 = 0x7fffffff;

// @ts-ignore: decorator
@inline
function countGe(s: usize, cols: i32, cand: u32): i32 {
  const vabs = i32x4.splat(<i32>ABS);
  const vc = i32x4.splat(<i32>cand);
  let vcnt = i32x4.splat(0);
  const c4 = cols & ~3;
  let j = 0;
  for (; j < c4; j += 4) {
    const vs = v128.and(v128.load(s + (<usize>j << 2)), vabs);
    vcnt = i32x4.sub(vcnt, i32x4.ge_u(vs, vc));
  }
  let n = i32x4.extract_lane(vcnt, 0) + i32x4.extract_lane(vcnt, 1) + i32x4.extract_lane(vcnt, 2) + i32x4.extract_lane(vcnt, 3);
  for (; j < cols; j++) if ((load<u32>(s + (<usize>j << 2)) & ABS) >= cand) n++;
  return n;
}

/**
 * mask[r, :] = 1 at the k largest |score[r, :]| of each of `rows` rows of `cols` (ties: lower index), else 0.
 * mask may not alias score. k ≤ 0 gives all zeros, k ≥ cols all ones.
 */
export function f32_topk_mask(score: usize, mask: usize, rows: i32, cols: i32, k: i32): void {
  assert(rows >= 0 && cols >= 0);
  const rowB = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const s = score + <usize>r * rowB;
    const m = mask + <usize>r * rowB;
    if (k <= 0 || k >= cols) {
      const v: f32 = k <= 0 ? 0 : 1;
      for (let j = 0; j < cols; j++) store<f32>(m + (<usize>j << 2), v);
      continue;
    }
    // T = the largest bit pattern with #{s ≥ T} ≥ k, built from the top bit down
    let t: u32 = 0;
    for (let bit = 30; bit >= 0; bit--) {
      const cand = t | (<u32>1 << bit);
      if (countGe(s, cols, cand) >= k) t = cand;
    }
    let need = k - countGe(s, cols, t + 1); // how many entries equal to T to keep
    for (let j = 0; j < cols; j++) {
      const v = load<u32>(s + (<usize>j << 2)) & ABS;
      let keep: f32 = 0;
      if (v > t) keep = 1;
      else if (v == t && need > 0) {
        keep = 1;
        need--;
      }
      store<f32>(m + (<usize>j << 2), keep);
    }
  }
}

/**
 * mask[r, g·M + i] = 1 for the n largest |score| of every group of m consecutive entries of each row
 * (ties: lower index). cols must be a multiple of m.
 */
export function f32_nm_mask(score: usize, mask: usize, rows: i32, cols: i32, n: i32, m: i32): void {
  assert(m >= 1 && n >= 0 && cols % m == 0);
  const total = <usize>rows * <usize>cols;
  const groups = total / <usize>m;
  const mB = <usize>m << 2;
  if ((m & 3) == 0) {
    const vabs = i32x4.splat(<i32>ABS);
    const vn = i32x4.splat(n);
    const vone = f32x4.splat(1);
    for (let g: usize = 0; g < groups; g++) {
      const s = score + g * mB;
      const o = mask + g * mB;
      for (let c = 0; c < m; c += 4) {
        const vs = v128.and(v128.load(s + (<usize>c << 2)), vabs);
        const vidx = i32x4.add(i32x4.splat(c), i32x4(0, 1, 2, 3));
        let vrank = i32x4.splat(0);
        for (let j = 0; j < m; j++) {
          const vj = i32x4.splat(<i32>(load<u32>(s + (<usize>j << 2)) & ABS));
          // s_j > s_i, or equal and j < i (u32 compares: non-negative floats order as their bits)
          const beats = v128.or(i32x4.gt_u(vj, vs), v128.and(i32x4.eq(vj, vs), i32x4.gt_s(vidx, i32x4.splat(j))));
          vrank = i32x4.sub(vrank, beats);
        }
        v128.store(o + (<usize>c << 2), v128.and(i32x4.lt_s(vrank, vn), vone));
      }
    }
  } else {
    for (let g: usize = 0; g < groups; g++) {
      const s = score + g * mB;
      const o = mask + g * mB;
      for (let i = 0; i < m; i++) {
        const si = load<u32>(s + (<usize>i << 2)) & ABS;
        let rank = 0;
        for (let j = 0; j < m; j++) {
          const sj = load<u32>(s + (<usize>j << 2)) & ABS;
          if (sj > si || (sj == si && j < i)) rank++;
        }
        store<f32>(o + (<usize>i << 2), rank < n ? 1 : 0);
      }
    }
  }
}

/**
 * out[i] = mask[i] != 0 ? w[i] : +0.0 for n floats (a 0/1 mask applied by selection, not multiplication: w·0
 * would be −0.0 for negative w, and a pruned weight is +0.0); out may alias w or mask.
 */
export function f32_mask_mul(w: usize, mask: usize, out: usize, n: i32): void {
  const n4 = n & ~3;
  const vzero = f32x4.splat(0);
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, v128.and(v128.load(w + o), f32x4.ne(v128.load(mask + o), vzero)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(mask + o) != 0 ? load<f32>(w + o) : 0);
  }
}

/** out[r] = number of nonzero entries of row r of w [rows, cols] (i32 per row). */
export function f32_row_nnz(w: usize, out: usize, rows: i32, cols: i32): void {
  const rowB = <usize>cols << 2;
  const c4 = cols & ~3;
  const vzero = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    const p = w + <usize>r * rowB;
    let vcnt = i32x4.splat(0);
    let j = 0;
    for (; j < c4; j += 4) vcnt = i32x4.sub(vcnt, f32x4.ne(v128.load(p + (<usize>j << 2)), vzero));
    let n = i32x4.extract_lane(vcnt, 0) + i32x4.extract_lane(vcnt, 1) + i32x4.extract_lane(vcnt, 2) + i32x4.extract_lane(vcnt, 3);
    for (; j < cols; j++) if (load<f32>(p + (<usize>j << 2)) != 0) n++;
    store<i32>(out + (<usize>r << 2), n);
  }
}
