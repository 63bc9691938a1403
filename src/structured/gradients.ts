/**
 * @file Exact gradients for the structure scores, from the training backward pass (src/train/backprop.ts):
 * ∂L/∂W of every linear weight of the dense model, L the mean next-token NLL per predicted token over the
 * calibration sequences (the objective of loss.ts `hookedLoss` and of the SPSA estimates). The gate
 * gradients follow from these without further passes:
 *
 *   ∂L/∂θ_s (the gate of loss.ts: F_s → (1 + θ_s)·F_s) = Σ over the consumer's columns c of s, all rows r,
 *       of W[r, c]·∂L/∂W[r, c] — scaling the structure's output is scaling those columns of down_proj / o_proj;
 *       this is also the first-order Taylor estimate of removing s, L(θ_s = −1) − L(0) ≈ −∂L/∂θ_s.
 *
 * One sequence at a time on this thread, in calibration order (float32 kernels with fixed summation order:
 * deterministic). Memory: the gradient of every parameter and the activations of one sequence — the
 * backpropagation cost MINI-LLM avoids; here it serves as the exact reference for its forward-only estimate.
 */
import type { LinearOp, Model } from "../model/types.js";
import { denseLayer } from "../model/linear.js";
import { kernels } from "../kernels/index.js";
import { createTrainState, trainBackward, trainForward } from "../train/backprop.js";
import { createStudent } from "../train/student.js";
import { emptyScores, groupQCols, layerCounts, type StructureScores } from "./structures.js";

export interface WeightGradients {
  /** per layer and operator: ∂L/∂W, (N, K) row-major like the weight */
  grad: Record<LinearOp, Float32Array>[];
  /** L at the dense weights, and the predicted tokens it averages over */
  loss: number;
  tokens: number;
}

/** ∂L/∂W of every linear weight over `calib` (file header). */
export function exactWeightGradients(model: Model, calib: readonly number[][]): WeightGradients {
  const a = model.wasm.arena;
  const k = kernels(model.wasm);
  const V = model.config.vocabSize;
  const seqs = calib.filter((s) => s.length >= 2);
  const count = seqs.reduce((n, s) => n + s.length - 1, 0);
  return a.scoped(() => {
    const st = createStudent(model, { sparse: false });
    const maxT = Math.max(2, ...seqs.map((s) => s.length));
    const ts = createTrainState(st, maxT);
    const g = a.zeros(st.gradFloats);
    let nll = 0;
    for (const seq of seqs) {
      const T = seq.length;
      trainForward(st, ts, seq);
      const tg = a.i32(ts.targets, T);
      for (let t = 0; t + 1 < T; t++) tg[t] = seq[t + 1];
      tg[T - 1] = -1;
      nll += k.f32_cross_entropy_backward(ts.logits, ts.targets, ts.dlogits, T, V, 1 / count, 0);
      trainBackward(st, ts, T, g);
    }
    const grads = a.f32(g, st.gradFloats);
    const grad = model.weights.layers.map(() => ({}) as Record<LinearOp, Float32Array>);
    for (const lp of st.linears) grad[lp.layer][lp.op] = grads.slice(lp.gradOffset, lp.gradOffset + lp.N * lp.K);
    return { grad, loss: count > 0 ? nll / count : 0, tokens: count };
  });
}

/** A weight-gradient source: ∂L/∂W of operator `op` of layer `l`, (N, K) row-major. */
export type WeightGradientOf = (l: number, op: LinearOp) => ArrayLike<number>;

/** The exact weight gradients as a source, the gate gradients, the time they took and L. */
export function exactGradients(model: Model, calib: readonly number[][]): { grad: WeightGradientOf; gate: StructureScores; seconds: number; loss: number } {
  const t0 = performance.now();
  const wg = exactWeightGradients(model, calib);
  return { grad: (l, op) => wg.grad[l][op], gate: gateGradientFromWeights(model, wg), seconds: (performance.now() - t0) / 1000, loss: wg.loss };
}

/** ∂L/∂θ_s of every structure (signed) from the weight gradients (file header). */
export function gateGradientFromWeights(model: Model, wg: Pick<WeightGradients, "grad">): StructureScores {
  const c = model.config;
  const out = emptyScores(c, model.weights.layers);
  model.weights.layers.forEach((layer, l) => {
    const lw = denseLayer(layer, l);
    const n = layerCounts(c, lw);
    const wd = lw.wDown.data;
    const gd = wg.grad[l].wDown;
    for (let r = 0; r < c.dim; r++) {
      for (let j = 0; j < n.channels; j++) out.channels[l][j] += wd[r * n.channels + j] * gd[r * n.channels + j];
    }
    const qDim = lw.wo.shape[1];
    const wo = lw.wo.data;
    const go = wg.grad[l].wo;
    for (let g = 0; g < n.groups; g++) {
      const [q0, q1] = groupQCols(c, g);
      let s = 0;
      for (let r = 0; r < c.dim; r++) for (let i = r * qDim + q0; i < r * qDim + q1; i++) s += wo[i] * go[i];
      out.groups[l][g] = s;
    }
  });
  return out;
}
