/**
 * @file The interface every pruning method implements (STYLE.md §6): an operator problem (weights, H,
 * cross term) and a pattern in, the pruned weights (a new arena block) and stats out.
 */
import type { Executor } from "../../exec/executor.js";
import type { GramProblem, OperatorProblem } from "../problem.js";
import type { StatsKind } from "../stats.js";
import type { Pattern } from "../pattern.js";
import type { FistaSolver } from "./fista.js";
import type { ObsQuant } from "../row-tasks.js";

export const METHOD_NAMES = Object.freeze(["magnitude", "wanda", "sparsegpt", "fista"] as const);
export type MethodName = (typeof METHOD_NAMES)[number];

export interface SparseGptOptions {
  /** columns per block (128); rounded down to a multiple of M for N:M */
  blockSize?: number;
  /** damping as a fraction of mean(diag H) (0.01) */
  percDamp?: number;
  /**
   * quantize the kept weights in the same sweep (SparseGPT's joint prune + quantize): the grid buffers, in the
   * caller's arena scope (src/prune/quantize.ts quantBuffers), filled by the sweep
   */
  quant?: ObsQuant;
}

export interface FistaOptions {
  /**
   * run the lasso path (per-row λ bisection, projection, refit) as a candidate (false). Measured on
   * stories260K (fista + error correction, 128 calibration paragraphs, ppl on 300 valid paragraphs): with it
   * 12.07 (0.5) / 17.31 (2:4), without 12.00 / 17.38 — it wins 2 of 35 operators at 0.5 and 7.7 % of rows at
   * 2:4, mean relative error equal to 4 digits — for 2.7x the W·H products (1160 of ≈1860 per operator).
   */
  lassoPath?: boolean;
  /** geometric bisection steps of the per-row λ (16) */
  bisectSteps?: number;
  /** FISTA iterations per bisection step (60) */
  itersPerStep?: number;
  /** FISTA iterations of the final solve at the chosen λ (200) */
  finalIters?: number;
  /** iterations of the refit of the kept weights (mask fixed, λ = 0) (150) */
  refitIters?: number;
  /** power-iteration steps for λmax(H) (60) */
  powerIters?: number;
  /** baselines whose solution warm-starts FISTA and bounds it per row (["wanda", "sparsegpt"]) */
  warmStart?: readonly ("magnitude" | "wanda" | "sparsegpt")[];
  /** iterative-hard-thresholding steps (then a refit) from the best per-row-exact candidate (0 = off) */
  ihtIters?: number;
  /** seed of the power-iteration start vector */
  seed?: number;
  /**
   * W·H products per operator to spend (candidates' objectives, refits and IHT; see `budgetIters`): sets
   * refitIters and ihtIters. Absent: those options when given, else DEFAULT_FISTA_BUDGET (60).
   */
  budget?: number;
}

export interface PruneOptions {
  sparsegpt?: SparseGptOptions;
  fista?: FistaOptions;
  /** FISTA's per-operator solver (default: the WASM FistaSolver; src/gpu/fista.ts's for --device webgpu) */
  fistaSolver?: (exec: Executor, problem: GramProblem) => FistaSolver;
}

export interface PruneStats {
  /** measured fraction of exact zeros */
  sparsity: number;
  /** f(W)/E = ‖W X_p − W₀ X_d‖² / ‖W₀ X_d‖², or null when the statistics had no Gram (see `stats`) */
  relErr: number | null;
  seconds: number;
  /** method extras (lambda, iterations, …) */
  [extra: string]: number | string | null | undefined;
}

export interface PruneResult {
  /** (rows, cols) the pruned weights: a new arena block, allocated before any of the method's scratch */
  W: number;
  stats: PruneStats;
}

export interface PruneMethod {
  readonly name: MethodName;
  readonly description: string;
  /** what the method needs from calibration (src/prune/stats.ts), with or without intra-layer error correction */
  stats(corrected: boolean): StatsKind;
  /**
   * Whether each output row's result depends on that row alone (the row's weights, H, the pattern): then an
   * operator solved in row blocks, on one machine or several, gives the same bits as solved whole
   * (src/prune/solve.ts; the distributed solve jobs). False where a choice spans rows (one threshold per operator).
   */
  rowsIndependent(pattern: Pattern): boolean;
  /**
   * Work on the Gram matrix H alone that every operator fitted on the same H shares (SparseGPT's inverse and
   * its Cholesky factor): made once per operator group by the driver, in the group's arena scope, and given to
   * each operator's `prune` as `problem.prepared`.
   */
  prepare?(exec: Executor, H: number, cols: number, corrected: boolean, opts?: PruneOptions): Promise<unknown>;
  /**
   * The buffers the method holds at least while it solves an operator (rows × cols; besides W and the
   * statistics), as [what, floats] — the floor src/prune/memory-floor.ts checks against the wasm32 limit.
   */
  memory(rows: number, cols: number, corrected: boolean): Array<[string, number]>;
  /**
   * Whether the method needs the problem formed in full (B = W₀·H and the target energy) without error
   * correction: FISTA's gradient does, SparseGPT's OBS loop does not (then only a measured error would).
   */
  needsFullProblem?: boolean;
  /**
   * Writes the pruned weights into W (rows×cols, the caller's block); its scratch stays allocated for the caller
   * to release (common.ts solveInto). Returns method extras for the report and f(W) when the method evaluated it.
   * The heavy products split their rows over the executor's slots (the same result for any thread count).
   */
  solve(exec: Executor, problem: OperatorProblem, pattern: Pattern, W: number, opts?: PruneOptions): Promise<MethodSolution>;
  /** `solve`, its scratch released, then the result's sparsity and relative error (methods/common.ts). */
  prune(exec: Executor, problem: OperatorProblem, pattern: Pattern, opts?: PruneOptions): Promise<PruneResult>;
}

export interface MethodSolution {
  info?: Record<string, number | string>;
  /** f(W) = ‖W X_p − W₀ X_d‖²/n when the method computed it */
  objective?: number;
}
