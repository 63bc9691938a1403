/**
 * @file The one interface every structure score implements (magnitude.ts, activation.ts, mini-llm.ts), and the
 * calibration statistics of the structures' outputs that activation and mini-llm share.
 */
import type { Model } from "../model/types.js";
import { createRunState, embed, layerForward } from "../model/forward.js";
import { GramCollector } from "../prune/gram.js";
import type { StructureScores } from "./structures.js";

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
  score(ctx: ScoreContext): ScoreResult;
}

/** Per layer: mean over calibration tokens of a_j² for each MLP channel, and the attention-output Gram H = AᵀA/n. */
export interface OutputStats {
  channelMeanSq: Float64Array[];
  /** (qDim × qDim) per layer, row-major */
  attGram: Float64Array[];
  tokens: number;
}

/** One pass of the model over the calibration sequences, capturing o_proj and down_proj inputs. */
export function outputStats(model: Model, calib: readonly number[][]): OutputStats {
  const c = model.config;
  const a = model.wasm.arena;
  const layers = model.weights.layers;
  return a.scoped(() => {
    const maxLen = Math.max(2, ...calib.map((s) => s.length));
    const st = createRunState(model, maxLen, maxLen);
    const grams = layers.map((lw) => new GramCollector(model.wasm, lw.wq.shape[0]));
    const sq = layers.map((lw) => new Float64Array(lw.wGate.shape[0]));
    let tokens = 0;
    for (const seq of calib) {
      embed(model, st, seq);
      for (let l = 0; l < c.nLayers; l++) {
        layerForward(model, st, layers[l], l, seq.length, 0, (point, x, T, cols) => {
          if (point === "o") grams[l].addBatch(x, T);
          else if (point === "down") {
            const v = a.f32(x, T * cols);
            const s = sq[l];
            for (let t = 0; t < T; t++) for (let j = 0; j < cols; j++) s[j] += v[t * cols + j] ** 2;
          }
        });
      }
      tokens += seq.length;
    }
    const attGram = grams.map((g) => {
      const st2 = g.finish();
      return Float64Array.from(a.f32(st2.H, st2.cols * st2.cols));
    });
    return { channelMeanSq: sq.map((s) => s.map((v) => v / Math.max(1, tokens))), attGram, tokens };
  });
}
