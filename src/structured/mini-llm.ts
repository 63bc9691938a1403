/**
 * @file The MINI-LLM hybrid score (Cheng, Zhang, Shi 2024, arXiv:2407.11681, §3: feature-map sensitivity with
 * forward-only gradients): magnitude × activation × |estimated gradient of the loss w.r.t. the structure's
 * output|. Exactly what we compute, per structure s (an MLP channel or a k/v group, see structures.ts):
 *
 *     score_s = M_s · A_s · |ĝ_s|
 *
 *   M_s  magnitude.ts (‖W_s‖₂),   A_s  activation.ts (RMS of the structure's contribution to the residual),
 *   ĝ_s  the SPSA estimate (spsa.ts) of ∂L/∂θ_s at θ = 0, where the forward hook (loss.ts `gateHook`) scales
 *        the structure's output feature map F_s by (1 + θ_s) and L is the mean next-token NLL on a calibration
 *        batch. ∂L/∂θ_s = Σ_t ⟨F_s(t), ∂L/∂F_s(t)⟩: the gradient w.r.t. the feature map, projected on the
 *        feature map itself — the first-order change of the loss when the structure's output is removed.
 *        Every gate of the model is perturbed at once (θ ± εz, one pair of forward passes per direction, as
 *        MeZO), K directions, direction k on batch k mod B.
 */
import type { Model } from "../model/types.js";
import { activationScores } from "./activation.js";
import { gateHook, gateLayout, hookedLoss, lossState, type GateLayout } from "./loss.js";
import { magnitudeScores } from "./magnitude.js";
import { outputStats, type ScoreContext, type ScoreResult, type SpsaSettings, type StructureScorer } from "./scorer.js";
import { spsaGradient } from "./spsa.js";
import { emptyScores, type StructureScores } from "./structures.js";

/** Calibration sequences in consecutive batches of `batchSize`. */
export function calibBatches(calib: readonly number[][], batchSize: number): number[][][] {
  const out: number[][][] = [];
  for (let i = 0; i < calib.length; i += batchSize) out.push(calib.slice(i, i + batchSize) as number[][]);
  return out;
}

/**
 * Run `fn` with L(θ, b): the mean NLL of batch b with every structure's output scaled by (1 + θ_s). The run
 * state lives in the arena for the duration of `fn`.
 */
export function withGateLoss<T>(
  model: Model, calib: readonly number[][], batchSize: number,
  fn: (loss: (theta: Float64Array, b: number) => number, layout: GateLayout, batches: number[][][]) => T,
): T {
  const batches = calibBatches(calib, batchSize);
  const layout = gateLayout(model);
  return model.wasm.arena.scoped(() => {
    const st = lossState(model, calib);
    return fn((theta, b) => hookedLoss(model, st, batches[b], gateHook(model, layout, theta)), layout, batches);
  });
}

/** θ-vector → per-structure arrays. */
export function unpackGates(model: Model, layout: GateLayout, v: Float64Array): StructureScores {
  const out = emptyScores(model.config, model.weights.layers);
  for (let l = 0; l < layout.offset.length; l++) {
    out.channels[l].set(v.subarray(layout.offset[l], layout.offset[l] + layout.channels[l]));
    out.groups[l].set(v.subarray(layout.offset[l] + layout.channels[l], layout.offset[l] + layout.channels[l] + layout.groups[l]));
  }
  return out;
}

/** ĝ for every structure (signed), by SPSA over the gates. */
export function featureMapGradient(
  model: Model, calib: readonly number[][], s: SpsaSettings, onDirection?: (k: number, K: number) => void,
): { gradient: StructureScores; evaluations: number; batches: number } {
  return withGateLoss(model, calib, s.batchSize, (loss, layout, batches) => {
    const r = spsaGradient(loss, new Float64Array(layout.size), { directions: s.directions, eps: s.eps, seed: s.seed, batches: batches.length, onDirection });
    return { gradient: unpackGates(model, layout, r.gradient), evaluations: r.evaluations, batches: batches.length };
  });
}

export const miniLlm: StructureScorer = {
  name: "mini-llm",
  formula: "‖W_s‖₂ · RMS(W_out[:, s]·F_s) · |ĝ_s|, ĝ_s = SPSA estimate of ∂L/∂θ_s for F_s → (1+θ_s)F_s",
  async score(ctx: ScoreContext): Promise<ScoreResult> {
    const { model, calib, spsa } = ctx;
    const M = magnitudeScores(model);
    const A = activationScores(model, await outputStats(model, calib, ctx.exec));
    const t0 = performance.now();
    const g = featureMapGradient(model, calib, spsa, (k, K) => ctx.onProgress?.("spsa", k, K));
    const seconds = (performance.now() - t0) / 1000;
    const combine = (m: Float64Array[], a: Float64Array[], gr: Float64Array[]): Float64Array[] =>
      m.map((ml, l) => ml.map((v, i) => v * a[l][i] * Math.abs(gr[l][i])));
    return {
      scores: { channels: combine(M.channels, A.channels, g.gradient.channels), groups: combine(M.groups, A.groups, g.gradient.groups) },
      details: { spsa: { ...spsa, batches: g.batches, forwardPasses: g.evaluations, seconds } },
    };
  },
};
