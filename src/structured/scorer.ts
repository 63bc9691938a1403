/**
 * @file The one interface every structure score implements (magnitude.ts, activation.ts, taylor.ts,
 * mini-llm.ts), and the calibration statistics of the operators' inputs that the data-aware scores share.
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
  /**
   * perturbation ε; undefined = the scorer's own default (mini-llm: 1e-3 on the weights, as MeZO;
   * gate-hybrid: 1e-2 on the gates, a relative scale 1 ± ε of each structure's output)
   */
  eps?: number;
  seed: number;
  /** calibration sequences per SPSA batch */
  batchSize: number;
}

export const DEFAULT_SPSA: Readonly<SpsaSettings> = Object.freeze({ directions: 128, seed: 1234, batchSize: 16 });

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

/**
 * Per layer, over calibration tokens: the mean of a_j² for each MLP channel (down_proj's input), the
 * attention-output Gram H = AᵀA/n (o_proj's input), and the mean square of each input column of q/k/v (the
 * attention norm's output) and of gate/up (the MLP norm's output).
 */
export interface OutputStats {
  channelMeanSq: Float64Array[];
  /** (qDim × qDim) per layer, row-major */
  attGram: Float64Array[];
  /** (dim) per layer */
  qkvMeanSq: Float64Array[];
  gateUpMeanSq: Float64Array[];
  tokens: number;
}

/**
 * One pass of the model over the calibration sequences, capturing every operator input (the decoder layer as
 * layerForward runs it, block by block, so the attention output's Gram update can be awaited).
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
    const qkv = layers.map(() => new Float64Array(c.dim));
    const gu = layers.map(() => new Float64Array(c.dim));
    const addSq = (acc: Float64Array, x: number, T: number, cols: number): void => {
      const v = a.f32(x, T * cols);
      for (let t = 0; t < T; t++) for (let j = 0; j < cols; j++) acc[j] += v[t * cols + j] ** 2;
    };
    let tokens = 0;
    for (const seq of calib) {
      const T = seq.length;
      embed(model, st, seq);
      for (let l = 0; l < c.nLayers; l++) {
        let att = 0;
        attentionBlock(model, st, layers[l], l, T, 0, (point, x, TT, cols) => {
          if (point === "o") att = x;
          else if (point === "qkv") addSq(qkv[l], x, TT, cols);
        });
        await grams[l].addBatches([{ xp: att, xd: att, T }]); // st.att holds the heads' output until the next layer
        k.f32_add(st.x, st.out, st.x, T * c.dim);
        mlpBlock(model, st, layers[l], T, (point, x, TT, cols) => {
          if (point === "down") addSq(sq[l], x, TT, cols);
          else if (point === "gateup") addSq(gu[l], x, TT, cols);
        });
        k.f32_add(st.x, st.out, st.x, T * c.dim);
      }
      tokens += T;
    }
    const attGram = grams.map((g) => {
      const st2 = g.finish();
      return Float64Array.from(a.f32(st2.H, st2.cols * st2.cols));
    });
    const mean = (s: Float64Array): Float64Array => s.map((v) => v / Math.max(1, tokens));
    return { channelMeanSq: sq.map(mean), attGram, qkvMeanSq: qkv.map(mean), gateUpMeanSq: gu.map(mean), tokens };
  } finally {
    a.release(mark);
  }
}
