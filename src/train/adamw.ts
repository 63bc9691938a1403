/**
 * @file AdamW (Loshchilov & Hutter, decoupled weight decay) over the student's parameters, with AST's decay of
 * pruned weights, float32 state, float64 arithmetic per element (deterministic; no reduction other than the
 * gradient norm, summed in parameter order).
 *
 * For a dense parameter (PyTorch AdamW): w ← w·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *   w ← w − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + ε).
 * For a masked linear weight under AST (github.com/thu-ml/Adaptive-Sparse-Trainer adamw.py, step(decay=λ_t)):
 *   w ← w·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  u = m + λ_t·(1 − M)⊙w;  v ← β2·v + (1−β2)·u²;
 *   w ← w − lr/(1−β1^t) · u / (sqrt(v)/sqrt(1−β2^t) + ε)
 * — the decay acts on the pruned weights only, outside the moving average of the loss gradient, so a pruned
 * weight is pulled to zero at a rate set by λ_t, which AST ramps up linearly (main.py get_decay: λ·t/increase_step).
 * With a fixed mask the gradient is masked and pruned weights stay exactly zero.
 * The gradient is first scaled (1/tokens: the block holds sums) and clipped to a global norm (AST: 1.0).
 */
import type { Student } from "./student.js";

export interface AdamWState {
  /** first moments (for masked weights under AST: of the loss gradient only), flat like the gradient block */
  m: Float32Array;
  /** second moments */
  v: Float32Array;
  /** optimizer steps taken */
  t: number;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** λ_t, AST's decay of pruned weights at this step (0 with a fixed mask) */
  maskedDecay: number;
  /** global gradient-norm clip (0 = off) */
  clip: number;
  /** "ast": masks move, pruned weights decay; "fixed": gradient masked, pruned weights stay zero */
  mode: "ast" | "fixed" | "dense";
}

export function createAdamW(st: Student): AdamWState {
  return { m: new Float32Array(st.gradFloats), v: new Float32Array(st.gradFloats), t: 0 };
}

/** One update from the summed gradients `g` (the gradient block), scaled by `scale`. Returns the gradient norm before clipping. */
export function adamwStep(st: Student, opt: AdamWState, g: Float32Array, scale: number, h: AdamWHyper): number {
  // global norm of the scaled loss gradient (masked in fixed mode), in parameter order
  let sq = 0;
  for (const p of st.params) {
    const mask = h.mode === "fixed" ? p.linear?.mask : undefined;
    const o = p.offset;
    for (let i = 0, n = p.t.data.length; i < n; i++) {
      if (mask && !mask[i]) continue;
      const v = g[o + i] * scale;
      sq += v * v;
    }
  }
  const norm = Math.sqrt(sq);
  const coef = h.clip > 0 && norm > h.clip ? h.clip / (norm + 1e-6) : 1;
  opt.t += 1;
  const bc1 = 1 - Math.pow(h.beta1, opt.t);
  const sbc2 = Math.sqrt(1 - Math.pow(h.beta2, opt.t));
  const stepSize = h.lr / bc1;
  const { beta1, beta2, eps } = h;
  const gs = scale * coef;
  for (const p of st.params) {
    const w = p.t.data;
    const o = p.offset;
    const shrink = p.decay ? 1 - h.lr * h.weightDecay : 1;
    const mask = p.linear?.mask;
    if (mask && h.mode === "ast") {
      const lam = h.maskedDecay;
      for (let i = 0, n = w.length; i < n; i++) {
        const wi = w[i] * shrink;
        const gi = g[o + i] * gs;
        const mi = beta1 * opt.m[o + i] + (1 - beta1) * gi;
        const u = mask[i] ? mi : mi + lam * wi;
        const vi = beta2 * opt.v[o + i] + (1 - beta2) * u * u;
        opt.m[o + i] = mi;
        opt.v[o + i] = vi;
        w[i] = wi - (stepSize * u) / (Math.sqrt(vi) / sbc2 + eps);
      }
    } else {
      const fixed = mask && h.mode === "fixed" ? mask : undefined;
      for (let i = 0, n = w.length; i < n; i++) {
        if (fixed && !fixed[i]) {
          w[i] = 0;
          continue;
        }
        const wi = w[i] * shrink;
        const gi = g[o + i] * gs;
        const mi = beta1 * opt.m[o + i] + (1 - beta1) * gi;
        const vi = beta2 * opt.v[o + i] + (1 - beta2) * gi * gi;
        opt.m[o + i] = mi;
        opt.v[o + i] = vi;
        w[i] = wi - (stepSize * mi) / (Math.sqrt(vi) / sbc2 + eps);
      }
    }
  }
  return norm;
}
