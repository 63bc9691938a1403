/** @file Pieces shared by the methods: mask selection by score under a pattern, result stats. */
import type { Wasm } from "../../wasm/runtime.js";
import { kernels } from "../../kernels/index.js";
import { checkPatternFits, keptPerRow, type Pattern } from "../pattern.js";
import { measuredSparsity, relativeError, type OperatorProblem } from "../problem.js";
import type { StatsKind } from "../stats.js";
import type { Executor } from "../../exec/executor.js";
import type { MethodSolution, PruneMethod, PruneOptions, PruneStats } from "./types.js";

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

/**
 * Sparsity and relative error of a method's result. The error needs the Gram statistics and the target energy (a
 * problem formed in full, see problemFromGram); `objective` = f(W) when the method knows it already (FISTA's
 * safeguard evaluates every candidate), else one D·H product measures it.
 */
export async function finishStats(
  exec: Executor, problem: OperatorProblem, W: number, t0: number, extra: Record<string, number | string> = {}, objective?: number,
): Promise<PruneStats> {
  const measurable = problem.kind === "gram" && Number.isFinite(problem.targetEnergy);
  return {
    sparsity: measuredSparsity(exec.wasm, W, problem.rows, problem.cols),
    relErr: !measurable ? null : objective !== undefined ? (problem.targetEnergy > 0 ? Math.max(objective, 0) / problem.targetEnergy : 0) : await relativeError(exec, problem, W),
    seconds: (performance.now() - t0) / 1000,
    ...extra,
  };
}

/** `method.solve` into W (rows×cols, the caller's block), its scratch given back. */
export async function solveInto(
  exec: Executor, method: Pick<PruneMethod, "solve">, problem: OperatorProblem, pattern: Pattern, W: number, opts?: PruneOptions,
): Promise<MethodSolution> {
  const a = exec.wasm.arena;
  const m = a.mark();
  try {
    return await method.solve(exec, problem, pattern, W, opts);
  } finally {
    a.release(m);
  }
}

/** A method from its solve: `prune` takes a block for W, solves into it, then measures it (one wrapper for all). */
export function defineMethod(m: Omit<PruneMethod, "prune">): PruneMethod {
  return {
    ...m,
    async prune(exec, problem, pattern, opts) {
      checkProblem(problem, pattern, m.name);
      const t0 = performance.now();
      const W = exec.wasm.arena.alloc(problem.rows * problem.cols);
      const sol = await solveInto(exec, m, problem, pattern, W, opts);
      return { W, stats: await finishStats(exec, problem, W, t0, sol.info ?? {}, sol.objective) };
    },
  };
}
