/**
 * @file N:M masks of the student's linear operators, recomputed from the dense shadow weights during AST, and
 * SLoRB's initialisation from the weights they prune.
 *
 * AST (Huang et al. 2024, "Pruning Large Language Models with Semi-Structural Adaptive Sparse Training", code:
 * github.com/thu-ml/Adaptive-Sparse-Trainer, sparse_modeling.py SparseLinear.calculate_mask): the score is
 * |W| ("magnitude") or |W|·sqrt(‖X_j‖²/n) ("wanda", scaler_row from calibration inputs), and in every group of
 * M consecutive inputs of a row the M−N lowest scores are pruned. Ties here keep the lower input index.
 */
import type { LinearParam } from "./student.js";

export const MASK_METRICS = Object.freeze(["magnitude", "wanda"] as const);
export type MaskMetric = (typeof MASK_METRICS)[number];

/**
 * Keep the n highest of every group of m scores |w[r, j]|·colScale[j] along each row (rows of K; K % m == 0).
 * Writes `mask` (1 = kept) and returns how many entries changed.
 */
export function nmMaskInto(w: Float32Array, K: number, n: number, m: number, mask: Uint8Array, colScale?: Float64Array): number {
  let flips = 0;
  const score = new Float64Array(m);
  const keep = new Uint8Array(m);
  for (let base = 0; base < w.length; base += m) {
    const j0 = base % K;
    for (let i = 0; i < m; i++) score[i] = Math.abs(w[base + i]) * (colScale ? colScale[j0 + i] : 1);
    keep.fill(0);
    for (let c = 0; c < n; c++) {
      let best = -1;
      for (let i = 0; i < m; i++) if (!keep[i] && (best < 0 || score[i] > score[best])) best = i;
      keep[best] = 1;
    }
    for (let i = 0; i < m; i++) {
      if (mask[base + i] !== keep[i]) flips++;
      mask[base + i] = keep[i];
    }
  }
  return flips;
}

/** Wanda's column scale: sqrt(‖X_j‖²/n) from accumulated squared input norms (AST add_batch's scaler_row). */
export function wandaScale(sqNorms: Float64Array, samples: number): Float64Array {
  return sqNorms.map((s) => Math.sqrt(s / Math.max(1, samples)));
}

/**
 * SLoRB initialisation (AST sparse_modeling.py init_SLoRB, SLoRB_init_type "mean"): S[r, q] = mean over the
 * q-th group of k inputs of W ⊙ (1 − M), the pruned weights (kept ones count as zeros in the mean). With the
 * 0/1 projection summing each group, S·(P x) then adds back mean(pruned)·Σ x of the group. A last group
 * shorter than k (k not dividing K) averages over its own size.
 */
export function initSlorb(lp: LinearParam): void {
  const s = lp.slorb;
  if (!s) return;
  const { N, K } = lp;
  const w = lp.w.data;
  const mask = lp.mask;
  const out = s.s.data;
  for (let r = 0; r < N; r++) {
    for (let q = 0; q < s.groups; q++) {
      const j0 = q * s.k;
      const j1 = Math.min(K, j0 + s.k);
      let sum = 0;
      for (let j = j0; j < j1; j++) if (mask && !mask[r * K + j]) sum += w[r * K + j];
      out[r * s.groups + q] = sum / (j1 - j0);
    }
  }
}
