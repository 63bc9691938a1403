/**
 * @file Side-by-side comparison of pruning settings on one model: each (method, pattern, schedule, error
 * correction) is pruned from the same dense weights (in memory, restored between runs, nothing written; every
 * operator's relative error measured) and evaluated on the same text. Used by the main job and by `wasprune bench methods`.
 */
import { perplexity, type PerplexityResult } from "../eval/perplexity.js";
import type { Executor } from "../exec/executor.js";
import { describeProtocol, type EvalSequences, type ProtocolReport } from "../eval/protocol.js";
import { LINEAR_OPS, type Model } from "../model/types.js";
import { denseLayer } from "../model/linear.js";
import type { CalibrationSet } from "./calibration.js";
import { pruneModel, type PruneSettings } from "./driver.js";
import { MemorySink } from "./output.js";
import { residentStore } from "../model/residency.js";
import { formatPattern } from "./pattern.js";

export interface ComparisonRow {
  method: string;
  pattern: string;
  schedule: string;
  errorCorrection: boolean;
  sparsity: number;
  meanRelErr: number;
  perplexity: number;
  seconds: number;
  /** fista: W·H products per operator (mean) */
  products?: number;
}

export interface Comparison {
  /** the evaluation protocol (src/eval/protocol.ts) */
  protocol: ProtocolReport;
  dense: PerplexityResult;
  rows: ComparisonRow[];
  /** with `keepBest`: the row of lowest perplexity and its pruned linear weights ([layer][LINEAR_OPS order]) */
  best?: { row: number; weights: Float32Array[][] };
}

/** Every decoder layer's linear weights, in LINEAR_OPS order (copies). */
export function linearWeights(model: Model): Float32Array[][] {
  return model.weights.layers.map((lw, l) => LINEAR_OPS.map((op) => denseLayer(lw, l)[op].data.slice()));
}

/** Put weights taken by `linearWeights` back into the model. */
export function setLinearWeights(model: Model, weights: Float32Array[][]): void {
  model.weights.layers.forEach((lw, l) => LINEAR_OPS.forEach((op, i) => denseLayer(lw, l)[op].data.set(weights[l]![i]!)));
}

export async function compareSettings(
  model: Model,
  calib: CalibrationSet,
  evalSeqs: EvalSequences,
  grid: PruneSettings[],
  exec: Executor,
  onRun?: (done: number, total: number, label: string) => void,
  opts: { keepBest?: boolean } = {},
): Promise<Comparison> {
  const snapshot = linearWeights(model);
  const restore = () => setLinearWeights(model, snapshot);
  let best: Comparison["best"];
  const ppl = () => perplexity(model, evalSeqs.sequences, exec, undefined, evalSeqs.countFrom);
  const dense = await ppl();
  const rows: ComparisonRow[] = [];
  try {
    for (const [i, s] of grid.entries()) {
      const label = `${s.method} ${formatPattern(s.pattern)} ${s.schedule}${s.errorCorrection ? " +corr" : ""}`;
      onRun?.(i, grid.length, label);
      const t0 = performance.now();
      // in place: each layer's pruned weights replace its dense ones once the stream has passed it
      const ops = await pruneModel(residentStore(model), calib, { ...s, measureError: true }, exec, new MemorySink(model));
      const seconds = (performance.now() - t0) / 1000;
      let params = 0;
      let zeros = 0;
      for (const r of ops) {
        params += r.rows * r.cols;
        zeros += r.sparsity * r.rows * r.cols;
      }
      rows.push({
        method: s.method,
        pattern: formatPattern(s.pattern),
        schedule: s.schedule,
        errorCorrection: s.errorCorrection,
        sparsity: zeros / params,
        meanRelErr: ops.reduce((a, r) => a + r.relErr!, 0) / ops.length, // measured (measureError)
        perplexity: (await ppl()).perplexity,
        seconds,
        ...(s.method === "fista" ? { products: ops.reduce((a, r) => a + Number(r.products ?? 0), 0) / ops.length } : {}),
      });
      if (opts.keepBest && (!best || rows[i]!.perplexity < rows[best.row]!.perplexity)) best = { row: i, weights: linearWeights(model) };
      restore();
      onRun?.(i + 1, grid.length, label);
    }
  } finally {
    restore();
  }
  return { protocol: describeProtocol(evalSeqs), dense, rows, ...(best ? { best } : {}) };
}
