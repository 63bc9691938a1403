/**
 * @file The one interface every structure score implements (magnitude.ts, activation.ts, mini-llm.ts), and the
 * calibration statistics of the structures' outputs that activation and mini-llm share.
 */
import type { Model } from "../model/types.js";
import type { Executor } from "../exec/executor.js";
import { attentionBlock, createRunState, embed, mlpBlock } from "../model/forward.js";
import { GramCollector } from "../prune/gram.js";
import type { StructureScores } from "./structures.js";
import { kernels } from "../kernels/index.js";

export interface SpsaSettings {
  /** directions K */
  directions: number;
  /** gate perturbation ε (relative: the output is scaled by 1 ± ε) */
  eps: number;
  seed: number;
  /** calibration sequences per SPSA batch */
  batchSize: number;
}

export const DEFAULT_SPSA: Readonly<SpsaSettings> = Object.freeze({ directions: 128, eps: 1e-2, seed: 1234, batchSize: 16 });

export interface ScoreContext {
  model: Model;
  exec: Executor;
  /** calibration token sequences (BOS first) */
  calib: readonly number[][];
  spsa: SpsaSettings;
  onProgress?(what: string, done: number, total: number): void;
}

export interface ScoreResult {
  scores: StructureScores;
  /** method-specific numbers for pruning.json (e.g. the SPSA settings and forward passes) */
  details: Record<string, unknown>;
}

export interface StructureScorer {
  name: string;
  /** one line for the report */
  formula: string;
  score(ctx: ScoreContext): Promise<ScoreResult>;
}

/** Per layer: mean over calibration tokens of a_j² for each MLP channel, and the attention-output Gram H = AᵀA/n. */
export interface OutputStats {
  channelMeanSq: Float64Array[];
  /** (qDim × qDim) per layer, row-major */
  attGram: Float64Array[];
  tokens: number;
}

/**
 * One pass of the model over the calibration sequences, capturing o_proj and down_proj inputs (the decoder
 * layer as layerForward runs it, block by block, so the attention output's Gram update can be awaited).
 */
export async function outputStats(model: Model, calib: readonly number[][], exec: Executor): Promise<OutputStats> {
  const c = model.config;
  const a = model.wasm.arena;
  const k = kernels(model.wasm);
  const layers = model.weights.layers;
  const mark = a.mark();
  try {
    const maxLen = Math.max(2, ...calib.map((s) => s.length));
    const st = createRunState(model, maxLen, maxLen);
    const grams = layers.map((lw) => new GramCollector(exec, lw.wq.shape[0]));
    const sq = layers.map((lw) => new Float64Array(lw.wGate.shape[0]));
    let tokens = 0;
    for (const seq of calib) {
      const T = seq.length;
      embed(model, st, seq);
      for (let l = 0; l < c.nLayers; l++) {
        let att = 0;
        attentionBlock(model, st, layers[l], l, T, 0, (point, x) => {
          if (point === "o") att = x;
        });
        await grams[l].addBatches([{ xp: att, xd: att, T }]); // st.att holds the heads' output until the next layer
        k.f32_add(st.x, st.out, st.x, T * c.dim);
        mlpBlock(model, st, layers[l], T, (point, x, TT, cols) => {
          if (point !== "down") return;
          const v = a.f32(x, TT * cols);
          const s = sq[l];
          for (let t = 0; t < TT; t++) for (let j = 0; j < cols; j++) s[j] += v[t * cols + j] ** 2;
        });
        k.f32_add(st.x, st.out, st.x, T * c.dim);
      }
      tokens += T;
    }
    const attGram = grams.map((g) => {
      const st2 = g.finish();
      return Float64Array.from(a.f32(st2.H, st2.cols * st2.cols));
    });
    return { channelMeanSq: sq.map((s) => s.map((v) => v / Math.max(1, tokens))), attGram, tokens };
  } finally {
    a.release(mark);
  }
}
