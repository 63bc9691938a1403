/**
 * @file Magnitude pruning: keep the largest |W₀|. Unstructured: one threshold over the whole operator;
 * N:M: the N largest of every M consecutive inputs of a row. Ignores the calibration statistics.
 */
import { checkProblem, finishStats, selectMask } from "./common.js";
import type { PruneMethod } from "./types.js";
import { kernels } from "../../kernels/index.js";

export const magnitude: PruneMethod = {
  name: "magnitude",
  description: "|W|: one threshold per operator (unstructured), top-N per group (N:M)",
  async prune(exec, problem, pattern) {
    checkProblem(problem, pattern, "magnitude");
    const wasm = exec.wasm;
    const t0 = performance.now();
    const { rows, cols } = problem;
    const a = wasm.arena;
    const W = a.alloc(rows * cols);
    a.scoped(() => {
      const mask = a.alloc(rows * cols);
      // |W₀| is read by the kernels (they clear the sign bit), so W₀ itself is the score
      selectMask(wasm, problem.W0, mask, rows, cols, pattern, "all");
      kernels(wasm).f32_mask_mul(problem.W0, mask, W, rows * cols);
    });
    return { W, stats: await finishStats(exec, problem, W, t0) };
  },
};
