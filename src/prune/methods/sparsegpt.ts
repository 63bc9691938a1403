/**
 * @file SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
 * One-Shot"), following IST-DASLab/sparsegpt `fasterprune`, names as there:
 *  - dead inputs (H_jj = 0): H_jj = 1 and W[:, j] = 0; damping δ = percdamp·mean(diag H) (0.01);
 *  - Hinv = upper Cholesky factor of (H + δI)⁻¹ (the reference: cholesky → cholesky_inverse → cholesky upper;
 *    here one factorization and one triangular inverse of the reversed H, blocked: src/prune/linalg.ts);
 *  - columns in blocks of 128 (Alg. 1): the mask is chosen inside each block by w²/[Hinv]_jj²
 *    (unstructured: the block's lowest round(s·rows·128) scores; the reference prunes `int(numel·s)+1` by
 *    its `<= thresh`, we prune exactly s; N:M: the M−N lowest of every group of M, chosen when the
 *    group's first column is reached), OBS update of the block's remaining columns per column (eq. 3),
 *    lazy batch update W[:, i2:] −= Err1·Hinv[i1:i2, i2:] (a kernel GEMM).
 *
 * Error correction (B ≠ W₀H): min_W ‖W X_p − W₀ X_d‖² = min_W ‖(W − W*) X_p‖² + const with the least-squares
 * solution W* = B·H⁻¹ (W*H = B), so SparseGPT runs unchanged on W* in place of W₀. We use the damped
 * (H + δI)⁻¹ that SparseGPT inverts anyway, i.e. W* is the ridge solution — the damping SparseGPT already
 * assumes.
 */
import type { Executor } from "../../exec/executor.js";
import { dampedInverseFactor, upperGram } from "../linalg.js";
import { gramProblem, type GramProblem } from "../problem.js";
import type { Pattern } from "../pattern.js";
import { defineMethod } from "./common.js";
import type { SparseGptOptions } from "./types.js";
import { matmul } from "../../kernels/products.js";
import { obsRows } from "../row-tasks.js";
import { kernels } from "../../kernels/index.js";

export const sparsegpt = defineMethod({
  name: "sparsegpt",
  description: "OBS updates through the Cholesky of H⁻¹, 128-column blocks",
  // N:M masks and OBS updates are row by row; unstructured, each block's mask is one threshold over all rows
  rowsIndependent: (pattern) => pattern.kind === "nm",
  stats: (corrected) => (corrected ? "cross" : "gram"),
  memory: (rows, cols, corrected) => [
    [`Cholesky factor of H⁻¹ (${cols}² × 4 B)`, cols * cols],
    ...(corrected ? [[`(H + δI)⁻¹ for W* (${cols}² × 4 B)`, cols * cols] as [string, number]] : []),
    ["OBS blocks", 3 * rows * 128],
  ],
  prepare: (exec, H, cols, corrected, opts) => hinvFactors(exec, H, cols, opts?.sparsegpt?.percDamp ?? 0.01, corrected),
  async solve(exec, problem, pattern, W, opts = {}) {
    return { info: await fasterprune(exec, gramProblem(problem, "sparsegpt"), pattern, W, opts.sparsegpt ?? {}) };
  },
});

/**
 * SparseGPT's work on H alone, the same for every operator fitted on this H (q/k/v, gate/up share theirs):
 * dead inputs, the damped inverse (H + δI)⁻¹ (kept in `full` under error correction, for W* = B·H⁻¹) and its
 * upper Cholesky factor `chol`, the matrix of the OBS loop (read only).
 */
export interface HinvFactors {
  H: number;
  percDamp: number;
  /** (cols, cols) (H + δI)⁻¹, under error correction only */
  full?: number;
  /** (cols, cols) upper Cholesky factor of (H + δI)⁻¹ */
  chol: number;
  dead: number[];
  damp: number;
}

/** The factors of H (arena blocks, the caller's scope). */
export async function hinvFactors(exec: Executor, H: number, cols: number, percDamp: number, corrected: boolean): Promise<HinvFactors> {
  const a = exec.wasm.arena;
  const chol = a.alloc(cols * cols);
  const full = corrected ? a.alloc(cols * cols) : undefined;
  const { dead, damp } = await dampedInverseFactor(exec, H, cols, percDamp, chol);
  if (full !== undefined) await upperGram(exec, chol, cols, full);
  return { H, percDamp, full, chol, dead, damp };
}

/**
 * Writes the pruned weights into W (rows×cols); its scratch stays allocated (the caller releases it). The
 * factor of H⁻¹ (src/prune/linalg.ts), W* = B·H⁻¹ and the OBS loop with its lazy batch updates (row blocks,
 * assembly/f32-obs.ts) split their work over the executor's slots. Same bytes for any thread count.
 */
export async function fasterprune(
  exec: Executor, problem: GramProblem, pattern: Pattern, W: number, opts: SparseGptOptions,
): Promise<{ damp: number; dead: number }> {
  const wasm = exec.wasm;
  const k = kernels(wasm);
  const a = wasm.arena;
  const { rows, cols } = problem;
  const percDamp = opts.percDamp ?? 0.01;
  let blockSize = opts.blockSize ?? 128;
  if (pattern.kind === "nm") blockSize = Math.max(pattern.m, Math.floor(blockSize / pattern.m) * pattern.m);

  // the H-side work, shared by the operators of a group when the driver prepared it (the same H)
  const given = problem.prepared as HinvFactors | undefined;
  const f = given && given.H === problem.H && given.percDamp === percDamp && (!problem.corrected || given.full)
    ? given
    : await hinvFactors(exec, problem.H, cols, percDamp, problem.corrected);
  const { dead, damp } = f;
  const Hinv = f.chol;

  // the weights to prune: W₀, or W* = B·(H + δI)⁻¹ under error correction
  if (problem.corrected) await matmul(exec, problem.B, f.full!, W, rows, cols, cols, "W* = B·H⁻¹");
  else a.f32(W, rows * cols).set(a.f32(problem.W0, rows * cols));
  const w = a.f32(W, rows * cols);
  for (const j of dead) for (let r = 0; r < rows; r++) w[r * cols + j] = 0;
  // joint quantization: per-channel grids fitted on the weights before the sweep, group grids in it
  const quant = opts.quant;
  if (quant?.group === 0) k.f32_quant_params(W, cols, rows, 0, cols, quant.qs, quant.qz, 1, 0, quant.qmin, quant.qmax);

  // the OBS loop: rows are independent given Hinv and the mask, so row blocks run on the pool's threads
  const Err = a.alloc(rows * blockSize);
  const S = a.alloc(rows * blockSize);
  const M = a.alloc(rows * blockSize);
  const task = { W, Hinv, cols, Err, S, M, blockSize, n: 0, m: 0, ...(quant ? { quant } : {}) };
  const work = (i1: number) => rows * blockSize * (blockSize / 2 + cols - i1);
  if (pattern.kind === "nm") {
    // N:M: each row's mask is chosen inside the row's own loop; one task per row block runs every block
    await obsRows(exec, { ...task, n: pattern.n, m: pattern.m, from: 0 }, rows, work(0), `OBS loop (${pattern.n}:${pattern.m})`);
    return { damp, dead: dead.length };
  }
  // unstructured: the block's mask is the lowest round(s·rows·count) scores over ALL rows — scores in the row
  // blocks, the selection (f32_topk_mask over the whole block, ties: lower index) here, then the updates
  const end = (i1: number) => Math.min(i1 + blockSize, cols);
  await obsRows(exec, { ...task, scores: [0, end(0)] }, rows, rows * end(0), "OBS scores");
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const i2 = end(i1);
    const total = rows * (i2 - i1);
    k.f32_topk_mask(S, M, 1, total, total - Math.round(pattern.sparsity * total));
    await obsRows(exec, { ...task, block: [i1, i2], scores: i2 < cols ? [i2, end(i2)] : undefined }, rows, work(i1), `OBS loop, columns ${i1}..${i2 - 1}`);
  }
  return { damp, dead: dead.length };
}
