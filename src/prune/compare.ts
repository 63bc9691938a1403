/**
 * @file Side-by-side comparison of pruning settings on one model: each (method, pattern, schedule, error
 * correction) is pruned from the same dense weights (restored between runs, nothing written) and evaluated on
 * the same text. Used by the main job and by `wasprune bench methods`.
 */
import { perplexity, type PerplexityResult } from "../eval/perplexity.js";
import type { Executor } from "../exec/executor.js";
import { LINEAR_OPS, type Model } from "../model/types.js";
import { denseLayer } from "../model/linear.js";
import type { CalibrationSet } from "./calibration.js";
import { pruneModel, type PruneSettings } from "./driver.js";
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
}

export interface Comparison {
  dense: PerplexityResult;
  rows: ComparisonRow[];
}

export async function compareSettings(
  model: Model,
  calib: CalibrationSet,
  evalSeqs: number[][],
  grid: PruneSettings[],
  exec: Executor,
  onRun?: (done: number, total: number, label: string) => void,
): Promise<Comparison> {
  const layers = model.weights.layers.map((lw, l) => denseLayer(lw, l));
  const snapshot = layers.map((lw) => LINEAR_OPS.map((op) => lw[op].data.slice()));
  const restore = () => layers.forEach((lw, l) => LINEAR_OPS.forEach((op, i) => lw[op].data.set(snapshot[l][i])));
  const dense = await perplexity(model, evalSeqs, exec);
  const rows: ComparisonRow[] = [];
  try {
    for (const [i, s] of grid.entries()) {
      const label = `${s.method} ${formatPattern(s.pattern)} ${s.schedule}${s.errorCorrection ? " +corr" : ""}`;
      onRun?.(i, grid.length, label);
      const t0 = performance.now();
      const ops = await pruneModel(model, calib, s, exec);
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
        meanRelErr: ops.reduce((a, r) => a + r.relErr, 0) / ops.length,
        perplexity: (await perplexity(model, evalSeqs, exec)).perplexity,
        seconds,
      });
      restore();
      onRun?.(i + 1, grid.length, label);
    }
  } finally {
    restore();
  }
  return { dense, rows };
}
