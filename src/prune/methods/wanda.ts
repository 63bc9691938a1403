/**
 * @file Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs", eq. 1):
 * S_ij = |W_ij|·‖X_j‖₂, compared within each output row (within each group of M for N:M).
 * ‖X_j‖₂² = n·H_jj, and the constant √n does not change any comparison, so S_ij = |W_ij|·√H_jj
 * (float32: fround(|w|·fround(√H_jj))).
 */
import { checkProblem, finishStats, selectMask } from "./common.js";
import type { PruneMethod } from "./types.js";
import { kernels } from "../../kernels/index.js";

export const wanda: PruneMethod = {
  name: "wanda",
  description: "|W|·‖x‖₂ per output row (unstructured), per group (N:M)",
  async prune(exec, problem, pattern) {
    checkProblem(problem, pattern, "wanda");
    const wasm = exec.wasm;
    const t0 = performance.now();
    const { rows, cols } = problem;
    const a = wasm.arena;
    const W = a.alloc(rows * cols);
    a.scoped(() => {
      const S = a.alloc(rows * cols);
      const mask = a.alloc(rows * cols);
      wandaScores(a.f32(problem.W0, rows * cols), a.f32(problem.H, cols * cols), rows, cols, a.f32(S, rows * cols));
      selectMask(wasm, S, mask, rows, cols, pattern, "row");
      kernels(wasm).f32_mask_mul(problem.W0, mask, W, rows * cols);
    });
    return { W, stats: await finishStats(exec, problem, W, t0) };
  },
};

/** S_ij = |W_ij|·√H_jj into `out`. */
export function wandaScores(w: Float32Array, h: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const norm = new Float32Array(cols);
  for (let j = 0; j < cols; j++) norm[j] = Math.sqrt(Math.max(h[j * cols + j], 0));
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) out[o + j] = Math.abs(w[o + j]) * norm[j];
  }
}
