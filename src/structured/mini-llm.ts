/**
 * @file MINI-LLM's hybrid score (Cheng, Zhang, Shi 2024, "MINI-LLM: Memory-Efficient Structured Pruning for
 * Large Language Models", arXiv:2407.11681, §3), in the form the paper gives, and the feature-map-gate form
 * this engine used before, each with the forward-only (SPSA) gradient and with the exact one (backprop,
 * gradients.ts) as its upper bound.
 *
 * What was read of the paper (the equations of §3 themselves were not available here): the abstract and §1
 * (arXiv HTML v1), and Algorithm 1 ("The structured pruning algorithm MINI-LLM"). Algorithm 1 takes the
 * pre-trained weights W₀ ∈ R^d, the loss L: R^d → R, the prune ratio p and a perturbation scale ε; it
 * (1) clears every weight's sensitivity score Ŝ(W_l^k), (2) runs forward passes "via Eq. (7)" to estimate
 * each *weight's* gradient ĝ_l^k, (3–5) computes each layer's input activation X_l and every weight's score
 * Ŝ(W_l^k) "via Eq. (9)", (7–8) keeps, in every layer, the groups Ŝ(G_l) ranked in the top 1 − p. The abstract
 * calls the score a hybrid of magnitude, activation and gradient capturing "feature map sensitivity".
 *
 * `mini-llm` (the paper's form, as far as Algorithm 1 fixes it): per weight w = W[i, j] of a linear operator
 * whose input column j is x_j,
 *
 *     Ŝ(w) = |W[i, j]| · ‖x_j‖ · |ĝ[i, j]|,     Ŝ(G) = Σ_{w ∈ G} Ŝ(w)
 *
 * with ‖x_j‖ = sqrt(mean_t x_j(t)²) over calibration tokens (Wanda's activation norm, up to the constant √n),
 * ĝ the MeZO/SPSA estimate of ∂L/∂W over *all* scored weights at once — every weight of q, k, v, o, gate, up,
 * down of every layer perturbed together, W₀ ± ε·z, z ~ N(0, I_d), one pair of forward passes per
 * direction, K directions averaged, direction k on calibration batch k mod B (spsa.ts) — and the group sum as
 * LLM-Pruner's default group reduction (MINI-LLM prunes the same coupled groups as LLM-Pruner: an MLP channel
 * = row j of gate and up + column j of down; here a whole k/v group = its q, k, v rows + its o columns).
 * Each kind is ranked within its layer at its own ratio (Algorithm 1, line 8), so channel and head scores are
 * never compared with each other; `--nonuniform` compares one kind across layers.
 * Assumed where Algorithm 1 is silent (Eq. 7 and 9 were not read): the norm of x (L2 over tokens), the
 * product of absolute values, summation over the group, Gaussian directions and ε = 1e-3 (MeZO's), K and the
 * batches. Only the linear weights are perturbed (MeZO perturbs every parameter): the estimate of the scored
 * coordinates is the same, and perturbing the embeddings and norms would only add variance.
 *
 * `gate-hybrid` (this engine's earlier reading, kept for comparison): per *structure*,
 * ‖W_s‖₂ · RMS(W_out[:, s]·F_s) · |∂L/∂θ_s| (magnitude.ts × activation.ts × the gate gradient of loss.ts),
 * the gradient of the structure's output scale θ_s estimated by SPSA over the gates (Rademacher, ε = 1e-2):
 * a d = (channels + groups) problem instead of d = (linear weights), so SPSA converges ~100× faster.
 *
 * The differences, term by term: magnitude — Frobenius norm of the whole structure (gate-hybrid) vs |w| per
 * weight (paper); activation — the RMS of the structure's contribution to the residual (gate-hybrid) vs the
 * input column norm of each weight (paper); gradient — one number per structure, ∂L/∂θ_s = Σ_c W[:,c]·∂L/∂W[:,c]
 * over its consumer columns (gate-hybrid) vs every weight's own ∂L/∂w (paper); product — of three structure
 * totals (gate-hybrid) vs per weight, then summed (paper); ZO estimate — gates scaled by (1 ± ε z), z ±1,
 * d = 880 for stories260K (gate-hybrid) vs weights W₀ ± ε z, z Gaussian, d = 226,560 (paper).
 */
import type { LinearOp, Model } from "../model/types.js";
import { LINEAR_OPS } from "../model/types.js";
import { denseLayer } from "../model/linear.js";
import { activationScores } from "./activation.js";
import { exactGradients, type WeightGradientOf } from "./gradients.js";
import { gateHook, gateLayout, hookedLoss, lossState, type GateLayout } from "./loss.js";
import { magnitudeScores } from "./magnitude.js";
import { outputStats, type OutputStats, type ScoreContext, type ScoreResult, type SpsaSettings, type StructureScorer } from "./scorer.js";
import { spsaGradient } from "./spsa.js";
import { emptyScores, groupKvRows, groupQCols, layerCounts, type StructureScores } from "./structures.js";

/** ε of the weight perturbation (MeZO's default) and of the gate perturbation (relative output scale). */
export const WEIGHT_EPS = 1e-3;
export const GATE_EPS = 1e-2;

/** Calibration sequences in consecutive batches of `batchSize`. */
export function calibBatches(calib: readonly number[][], batchSize: number): number[][][] {
  const out: number[][][] = [];
  for (let i = 0; i < calib.length; i += batchSize) out.push(calib.slice(i, i + batchSize) as number[][]);
  return out;
}

// ---- the gate form ---------------------------------------------------------------------------------------

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

/** ĝ_θ for every structure (signed), by SPSA over the gates; running estimates at `checkpoints` too. */
export function featureMapGradient(
  model: Model, calib: readonly number[][], s: SpsaSettings, checkpoints: readonly number[] = [], onDirection?: (k: number, K: number) => void,
): { gradient: StructureScores; at: Map<number, StructureScores>; evaluations: number; batches: number } {
  return withGateLoss(model, calib, s.batchSize, (loss, layout, batches) => {
    const r = spsaGradient(loss, new Float64Array(layout.size), { directions: s.directions, eps: s.eps ?? GATE_EPS, seed: s.seed, batches: batches.length, onDirection }, checkpoints);
    const at = new Map([...r.at].map(([k, v]) => [k, unpackGates(model, layout, v)]));
    return { gradient: unpackGates(model, layout, r.gradient), at, evaluations: r.evaluations, batches: batches.length };
  });
}

/** M_s · A_s · |g_s| per structure. */
export function gateHybridScores(M: StructureScores, A: StructureScores, g: StructureScores): StructureScores {
  const combine = (m: Float64Array[], a: Float64Array[], gr: Float64Array[]): Float64Array[] =>
    m.map((ml, l) => ml.map((v, i) => v * a[l][i] * Math.abs(gr[l][i])));
  return { channels: combine(M.channels, A.channels, g.channels), groups: combine(M.groups, A.groups, g.groups) };
}

// ---- the paper's form ------------------------------------------------------------------------------------

/** Where each scored operator's weights sit in the flat vector θ of the weight SPSA: layer by layer, LINEAR_OPS order. */
export interface WeightLayout {
  ops: { layer: number; op: LinearOp; offset: number; size: number }[];
  size: number;
}

export function weightLayout(model: Model): WeightLayout {
  const ops: WeightLayout["ops"] = [];
  let n = 0;
  model.weights.layers.forEach((layer, l) => {
    const lw = denseLayer(layer, l);
    for (const op of LINEAR_OPS) {
      const size = lw[op].data.length;
      ops.push({ layer: l, op, offset: n, size });
      n += size;
    }
  });
  return { ops, size: n };
}

/**
 * Run `fn` with L(θ, b): the mean NLL of batch b with every linear weight W₀ → W₀ + θ (written into the model's
 * float32 tensors). The dense weights are restored when `fn` returns or throws.
 */
export function withWeightLoss<T>(
  model: Model, calib: readonly number[][], batchSize: number,
  fn: (loss: (theta: Float64Array, b: number) => number, layout: WeightLayout, batches: number[][][]) => T,
): T {
  const batches = calibBatches(calib, batchSize);
  const layout = weightLayout(model);
  const tensors = layout.ops.map((o) => denseLayer(model.weights.layers[o.layer], o.layer)[o.op].data);
  const w0 = tensors.map((t) => t.slice());
  try {
    return model.wasm.arena.scoped(() => {
      const st = lossState(model, calib);
      const loss = (theta: Float64Array, b: number): number => {
        layout.ops.forEach((o, i) => {
          const t = tensors[i];
          const base = w0[i];
          for (let j = 0; j < o.size; j++) t[j] = base[j] + theta[o.offset + j];
        });
        return hookedLoss(model, st, batches[b]);
      };
      return fn(loss, layout, batches);
    });
  } finally {
    tensors.forEach((t, i) => t.set(w0[i]));
  }
}

/** The weight gradient ĝ by SPSA over every linear weight (file header); running estimates at `checkpoints`. */
export function weightGradientSpsa(
  model: Model, calib: readonly number[][], s: SpsaSettings, checkpoints: readonly number[] = [], onDirection?: (k: number, K: number) => void,
): { gradient: Float64Array; at: Map<number, Float64Array>; layout: WeightLayout; evaluations: number; batches: number } {
  return withWeightLoss(model, calib, s.batchSize, (loss, layout, batches) => {
    const r = spsaGradient(
      loss, new Float64Array(layout.size),
      { directions: s.directions, eps: s.eps ?? WEIGHT_EPS, seed: s.seed, batches: batches.length, distribution: "gaussian", onDirection },
      checkpoints,
    );
    return { gradient: r.gradient, at: r.at, layout, evaluations: r.evaluations, batches: batches.length };
  });
}

/** The gradient source of a flat SPSA vector. */
export function flatGradient(layout: WeightLayout, g: Float64Array): WeightGradientOf {
  const at = new Map(layout.ops.map((o) => [`${o.layer}.${o.op}`, g.subarray(o.offset, o.offset + o.size)]));
  return (l, op) => at.get(`${l}.${op}`)!;
}

/** Ŝ(G) = Σ_{w∈G} |w|·‖x_col(w)‖·|g_w| for every channel and k/v group (file header). */
export function paperScores(model: Model, stats: OutputStats, grad: WeightGradientOf): StructureScores {
  const c = model.config;
  const out = emptyScores(c, model.weights.layers);
  model.weights.layers.forEach((layer, l) => {
    const lw = denseLayer(layer, l);
    const n = layerCounts(c, lw);
    const rms = (v: Float64Array): Float64Array => v.map(Math.sqrt);
    const xIn = rms(stats.qkvMeanSq[l]);
    const xMlp = rms(stats.gateUpMeanSq[l]);
    const xH = rms(stats.channelMeanSq[l]);
    const qDim = lw.wq.shape[0];
    const xAtt = Float64Array.from({ length: qDim }, (_, i) => Math.sqrt(Math.max(0, stats.attGram[l][i * qDim + i])));
    /** Σ over rows r0..r1 of an operator whose input norms are x */
    const rows = (op: LinearOp, x: Float64Array, r0: number, r1: number): number => {
      const w = lw[op].data;
      const g = grad(l, op);
      const K = lw[op].shape[1];
      let s = 0;
      for (let r = r0; r < r1; r++) for (let j = 0; j < K; j++) s += Math.abs(w[r * K + j]) * x[j] * Math.abs(g[r * K + j]);
      return s;
    };
    /** Σ over columns c0..c1 (all rows) */
    const cols = (op: LinearOp, x: Float64Array, c0: number, c1: number): number => {
      const w = lw[op].data;
      const g = grad(l, op);
      const [N, K] = lw[op].shape;
      let s = 0;
      for (let r = 0; r < N; r++) for (let j = c0; j < c1; j++) s += Math.abs(w[r * K + j]) * x[j] * Math.abs(g[r * K + j]);
      return s;
    };
    for (let j = 0; j < n.channels; j++) {
      out.channels[l][j] = rows("wGate", xMlp, j, j + 1) + rows("wUp", xMlp, j, j + 1) + cols("wDown", xH, j, j + 1);
    }
    for (let g = 0; g < n.groups; g++) {
      const [q0, q1] = groupQCols(c, g);
      const [k0, k1] = groupKvRows(c, g);
      out.groups[l][g] = rows("wq", xIn, q0, q1) + rows("wk", xIn, k0, k1) + rows("wv", xIn, k0, k1) + cols("wo", xAtt, q0, q1);
    }
  });
  return out;
}

function spsaDetails(s: SpsaSettings, eps: number, r: { evaluations: number; batches: number }, seconds: number, what: string): Record<string, unknown> {
  return { spsa: { ...s, eps, perturbed: what, batches: r.batches, forwardPasses: r.evaluations, seconds } };
}

export const miniLlm: StructureScorer = {
  name: "mini-llm",
  formula: "Σ_{w∈G} |w|·‖x_col(w)‖·|ĝ_w|, ĝ = SPSA (MeZO, Gaussian z) estimate of ∂L/∂W over every linear weight",
  async score(ctx: ScoreContext): Promise<ScoreResult> {
    const stats = await outputStats(ctx.model, ctx.calib, ctx.exec);
    const t0 = performance.now();
    const r = weightGradientSpsa(ctx.model, ctx.calib, ctx.spsa, [], (k, K) => ctx.onProgress?.("spsa", k, K));
    const seconds = (performance.now() - t0) / 1000;
    return {
      scores: paperScores(ctx.model, stats, flatGradient(r.layout, r.gradient)),
      details: spsaDetails(ctx.spsa, ctx.spsa.eps ?? WEIGHT_EPS, r, seconds, `${r.layout.size} linear weights`),
    };
  },
};

export const miniLlmExact: StructureScorer = {
  name: "mini-llm-exact",
  formula: "Σ_{w∈G} |w|·‖x_col(w)‖·|∂L/∂w|, the exact gradient by backpropagation (upper bound of mini-llm)",
  async score(ctx: ScoreContext): Promise<ScoreResult> {
    const stats = await outputStats(ctx.model, ctx.calib, ctx.exec);
    const e = exactGradients(ctx.model, ctx.calib);
    return { scores: paperScores(ctx.model, stats, e.grad), details: { gradient: { kind: "backprop", seconds: e.seconds, loss: e.loss } } };
  },
};

export const gateHybrid: StructureScorer = {
  name: "gate-hybrid",
  formula: "‖W_s‖₂ · RMS(W_out[:, s]·F_s) · |ĝ_s|, ĝ_s = SPSA estimate of ∂L/∂θ_s for F_s → (1+θ_s)F_s",
  async score(ctx: ScoreContext): Promise<ScoreResult> {
    const { model, calib, spsa } = ctx;
    const M = magnitudeScores(model);
    const A = activationScores(model, await outputStats(model, calib, ctx.exec));
    const t0 = performance.now();
    const g = featureMapGradient(model, calib, spsa, [], (k, K) => ctx.onProgress?.("spsa", k, K));
    const seconds = (performance.now() - t0) / 1000;
    return { scores: gateHybridScores(M, A, g.gradient), details: spsaDetails(spsa, spsa.eps ?? GATE_EPS, g, seconds, "structure output gates") };
  },
};

export const gateHybridExact: StructureScorer = {
  name: "gate-hybrid-exact",
  formula: "‖W_s‖₂ · RMS(W_out[:, s]·F_s) · |∂L/∂θ_s|, the exact gate gradient by backpropagation (upper bound of gate-hybrid)",
  async score(ctx: ScoreContext): Promise<ScoreResult> {
    const { model, calib } = ctx;
    const M = magnitudeScores(model);
    const A = activationScores(model, await outputStats(model, calib, ctx.exec));
    const e = exactGradients(model, calib);
    return { scores: gateHybridScores(M, A, e.gate), details: { gradient: { kind: "backprop", seconds: e.seconds, loss: e.loss } } };
  },
};
