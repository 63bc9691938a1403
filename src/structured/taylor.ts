/**
 * @file First-order Taylor score (LLM-Pruner's vector-wise importance for a structure, exact): removing s sets
 * its gate θ_s = −1 (loss.ts), so L(removed) − L ≈ −∂L/∂θ_s, and the score is |∂L/∂θ_s| =
 * |Σ_t ⟨F_s(t), ∂L/∂F_s(t)⟩| with the gradient from the backward pass (gradients.ts). The one-number-per-structure
 * gradient that gate-hybrid multiplies by magnitude and activation, on its own.
 */
import { exactGradients } from "./gradients.js";
import type { ScoreContext, ScoreResult, StructureScorer } from "./scorer.js";

export const taylor: StructureScorer = {
  name: "taylor",
  formula: "|∂L/∂θ_s| = |Σ_t ⟨F_s(t), ∂L/∂F_s(t)⟩|: first-order Taylor estimate of the loss change when s is removed (exact, backprop)",
  async score(ctx: ScoreContext): Promise<ScoreResult> {
    const e = exactGradients(ctx.model, ctx.calib);
    const abs = (v: Float64Array[]): Float64Array[] => v.map((x) => x.map(Math.abs));
    return { scores: { channels: abs(e.gate.channels), groups: abs(e.gate.groups) }, details: { gradient: { kind: "backprop", seconds: e.seconds, loss: e.loss } } };
  },
};
