/**
 * @file Activation score (Wanda-sp / FLAP style): the RMS over calibration tokens of the structure's output as
 * it enters the residual stream — what removing it (without refit) takes away from the layer's output:
 *   channel j:  ‖down_{:,j}‖₂ · sqrt(mean_t a_j(t)²)
 *   group g:    sqrt(mean_t ‖W_o[:, G] · att_G(t)‖²) = sqrt(tr(W_o[:, G] · H_GG · W_o[:, G]ᵀ)),  H = AᵀA/n
 * with a_j the channel's activation silu(gate_j·x)·(up_j·x) and att_G the attention output of g's query heads,
 * from one pass of the dense model over the calibration data.
 */
import type { Model } from "../model/types.js";
import { denseLayer } from "../model/linear.js";
import { outputStats, type OutputStats, type ScoreContext, type ScoreResult, type StructureScorer } from "./scorer.js";
import { emptyScores, groupQCols, layerCounts, type StructureScores } from "./structures.js";

export function activationScores(model: Model, stats: OutputStats): StructureScores {
  const c = model.config;
  const out = emptyScores(c, model.weights.layers);
  model.weights.layers.forEach((layer, l) => {
    const lw = denseLayer(layer, l);
    const k = layerCounts(c, lw);
    const wd = lw.wDown.data;
    for (let j = 0; j < k.channels; j++) {
      let n2 = 0;
      for (let r = 0; r < c.dim; r++) n2 += wd[r * k.channels + j] ** 2;
      out.channels[l][j] = Math.sqrt(n2 * stats.channelMeanSq[l][j]);
    }
    const qDim = lw.wq.shape[0];
    const H = stats.attGram[l];
    const wo = lw.wo.data;
    for (let g = 0; g < k.groups; g++) {
      const [q0, q1] = groupQCols(c, g);
      let tr = 0;
      for (let r = 0; r < c.dim; r++) {
        const row = r * qDim;
        for (let i = q0; i < q1; i++) {
          let s = 0;
          for (let j = q0; j < q1; j++) s += H[i * qDim + j] * wo[row + j];
          tr += wo[row + i] * s;
        }
      }
      out.groups[l][g] = Math.sqrt(Math.max(tr, 0));
    }
  });
  return out;
}

export const activation: StructureScorer = {
  name: "activation",
  formula: "RMS over calibration tokens of the structure's contribution W_out[:, s]·F_s to the residual stream",
  async score(ctx: ScoreContext): Promise<ScoreResult> {
    const stats = await outputStats(ctx.model, ctx.calib, ctx.exec);
    return { scores: activationScores(ctx.model, stats), details: { tokens: stats.tokens } };
  },
};
