/** @file Pieces shared by the methods: mask selection by score under a pattern, result stats. */
import type { Wasm } from "../../wasm/runtime.js";
import { checkPatternFits, keptPerRow, type Pattern } from "../pattern.js";
import { measuredSparsity, relativeError, type OperatorProblem } from "../problem.js";
import type { Executor } from "../../exec/executor.js";
import type { PruneStats } from "./types.js";
import { kernels } from "../../kernels/index.js";

/**
 * mask (rows×cols, 0/1) keeping the highest |score| under the pattern. Scope for unstructured: `row`
 * (keep round((1−s)·cols) per row) or `all` (keep round((1−s)·rows·cols) over the whole matrix).
 */
export function selectMask(
  wasm: Wasm, score: number, mask: number, rows: number, cols: number, pattern: Pattern, scope: "row" | "all",
): void {
  const k = kernels(wasm);
  if (pattern.kind === "nm") {
    k.f32_nm_mask(score, mask, rows, cols, pattern.n, pattern.m);
  } else if (scope === "row") {
    k.f32_topk_mask(score, mask, rows, cols, keptPerRow(pattern, cols));
  } else {
    const total = rows * cols;
    k.f32_topk_mask(score, mask, 1, total, total - Math.round(pattern.sparsity * total));
  }
}

export function checkProblem(problem: OperatorProblem, pattern: Pattern, name: string): void {
  checkPatternFits(pattern, problem.cols, name);
}

export async function finishStats(
  exec: Executor, problem: OperatorProblem, W: number, t0: number, extra: Record<string, number | string> = {},
): Promise<PruneStats> {
  return {
    sparsity: measuredSparsity(exec.wasm, W, problem.rows, problem.cols),
    relErr: await relativeError(exec, problem, W),
    seconds: (performance.now() - t0) / 1000,
    ...extra,
  };
}
