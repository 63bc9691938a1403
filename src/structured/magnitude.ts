/**
 * @file Magnitude score: the L2 norm of all of a structure's weights (LLM-Pruner's vector-wise magnitude).
 *   channel j:  ‖[gate_j, up_j, down_{:,j}]‖₂
 *   group g:    ‖[q rows, k rows, v rows of g, o_proj columns of g]‖₂
 */
import type { LayerWeights, Model } from "../model/types.js";
import { denseLayer } from "../model/linear.js";
import type { ScoreContext, ScoreResult, StructureScorer } from "./scorer.js";
import { emptyScores, groupKvRows, groupQCols, layerCounts, type StructureScores } from "./structures.js";

function rowsSq(w: Float32Array, cols: number, r0: number, r1: number): number {
  let s = 0;
  for (let i = r0 * cols; i < r1 * cols; i++) s += w[i] * w[i];
  return s;
}

function colsSq(w: Float32Array, rows: number, cols: number, c0: number, c1: number): number {
  let s = 0;
  for (let r = 0; r < rows; r++) for (let j = r * cols + c0; j < r * cols + c1; j++) s += w[j] * w[j];
  return s;
}

/** The magnitude scores of every structure of `model`. */
export function magnitudeScores(model: Model): StructureScores {
  const c = model.config;
  const out = emptyScores(c, model.weights.layers);
  model.weights.layers.forEach((layer: LayerWeights, l) => {
    const lw = denseLayer(layer, l);
    const k = layerCounts(c, lw);
    const hid = k.channels;
    for (let j = 0; j < hid; j++) {
      out.channels[l][j] = Math.sqrt(rowsSq(lw.wGate.data, c.dim, j, j + 1) + rowsSq(lw.wUp.data, c.dim, j, j + 1) + colsSq(lw.wDown.data, c.dim, hid, j, j + 1));
    }
    const qDim = lw.wq.shape[0];
    for (let g = 0; g < k.groups; g++) {
      const [q0, q1] = groupQCols(c, g);
      const [k0, k1] = groupKvRows(c, g);
      out.groups[l][g] = Math.sqrt(
        rowsSq(lw.wq.data, c.dim, q0, q1) + rowsSq(lw.wk.data, c.dim, k0, k1) + rowsSq(lw.wv.data, c.dim, k0, k1) + colsSq(lw.wo.data, c.dim, qDim, q0, q1),
      );
    }
  });
  return out;
}

export const magnitude: StructureScorer = {
  name: "magnitude",
  formula: "‖W_s‖₂ over every weight of the structure",
  async score(ctx: ScoreContext): Promise<ScoreResult> {
    return { scores: magnitudeScores(ctx.model), details: {} };
  },
};
