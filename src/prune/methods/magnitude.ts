/**
 * @file Magnitude pruning: keep the largest |W₀|. Unstructured: one threshold over the whole operator;
 * N:M: the N largest of every M consecutive inputs of a row. Ignores the calibration statistics.
 */
import { kernels } from "../../kernels/index.js";
import { defineMethod, selectMask } from "./common.js";

export const magnitude = defineMethod({
  name: "magnitude",
  description: "|W|: one threshold per operator (unstructured), top-N per group (N:M)",
  rowsIndependent: (pattern) => pattern.kind === "nm", // unstructured: one threshold per operator
  stats: () => "none", // the mask ignores the data, with or without error correction
  memory: (rows, cols) => [["mask", rows * cols]],
  async solve(exec, problem, pattern, W) {
    const wasm = exec.wasm;
    const { rows, cols } = problem;
    const mask = wasm.arena.alloc(rows * cols);
    // |W₀| is read by the kernels (they clear the sign bit), so W₀ itself is the score
    selectMask(wasm, problem.W0, mask, rows, cols, pattern, "all");
    kernels(wasm).f32_mask_mul(problem.W0, mask, W, rows * cols);
    return {};
  },
});
