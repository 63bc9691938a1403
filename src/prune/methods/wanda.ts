/**
 * @file Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs", eq. 1):
 * S_ij = |W_ij|·‖X_j‖₂, compared within each output row (within each group of M for N:M).
 * ‖X_j‖₂² = n·H_jj, and the constant √n does not change any comparison, so S_ij = |W_ij|·√H_jj
 * (float32: fround(|w|·fround(√H_jj))).
 */
import { kernels } from "../../kernels/index.js";
import { defineMethod, selectMask } from "./common.js";
import { UsageError } from "../../errors.js";

export const wanda = defineMethod({
  name: "wanda",
  description: "|W|·‖x‖₂ per output row (unstructured), per group (N:M)",
  rowsIndependent: () => true, // scores compared within a row
  stats: () => "norms", // of the input the operator sees (the pruned model's under error correction)
  memory: (rows, cols) => [["scores", rows * cols], ["mask", rows * cols]],
  async solve(exec, problem, pattern, W) {
    const wasm = exec.wasm;
    const { rows, cols } = problem;
    const a = wasm.arena;
    if (!problem.diag) throw new UsageError("wanda needs the column norms of its operator's input");
    const S = a.alloc(rows * cols);
    const mask = a.alloc(rows * cols);
    wandaScores(a.f32(problem.W0, rows * cols), problem.diag, rows, cols, a.f32(S, rows * cols));
    selectMask(wasm, S, mask, rows, cols, pattern, "row");
    kernels(wasm).f32_mask_mul(problem.W0, mask, W, rows * cols);
    return {};
  },
});

/** S_ij = |W_ij|·√H_jj into `out` (`diag`: H_jj). */
export function wandaScores(w: Float32Array, diag: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const norm = new Float32Array(cols);
  for (let j = 0; j < cols; j++) norm[j] = Math.sqrt(Math.max(diag[j]!, 0));
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) out[o + j] = Math.abs(w[o + j]) * norm[j];
  }
}
