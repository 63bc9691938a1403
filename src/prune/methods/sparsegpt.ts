/**
 * @file SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
 * One-Shot"), following IST-DASLab/sparsegpt `fasterprune`, names as there:
 *  - dead inputs (H_jj = 0): H_jj = 1 and W[:, j] = 0; damping δ = percdamp·mean(diag H) (0.01);
 *  - Hinv = upper Cholesky factor of (H + δI)⁻¹ (cholesky → cholesky_inverse → cholesky upper);
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
import type { Wasm } from "../../wasm/runtime.js";
import { pruneKernels } from "../../kernels/prune-api.js";
import { choleskyUpper, dampedInverse } from "../linalg.js";
import type { OperatorProblem } from "../problem.js";
import type { Pattern } from "../pattern.js";
import { checkProblem, finishStats } from "./common.js";
import type { PruneMethod, SparseGptOptions } from "./types.js";
import { WasmError } from "../../errors.js";
import { gemmStrided, matmul } from "../../parallel/rows.js";

export const sparsegpt: PruneMethod = {
  name: "sparsegpt",
  description: "OBS updates through the Cholesky of H⁻¹, 128-column blocks",
  async prune(wasm, problem, pattern, opts = {}) {
    checkProblem(problem, pattern, "sparsegpt");
    const t0 = performance.now();
    const W = wasm.arena.alloc(problem.rows * problem.cols);
    const m = wasm.arena.mark();
    const info = await fasterprune(wasm, problem, pattern, W, opts.sparsegpt ?? {});
    wasm.arena.release(m);
    return { W, stats: await finishStats(wasm, problem, W, t0, info) };
  },
};

/**
 * Writes the pruned weights into W (rows×cols); its scratch stays allocated (the caller releases it). The
 * products W* = B·H⁻¹ and the lazy batch updates run on `wasm.parallel`'s threads when there is a pool.
 */
export async function fasterprune(
  wasm: Wasm, problem: OperatorProblem, pattern: Pattern, W: number, opts: SparseGptOptions,
): Promise<{ damp: number; dead: number }> {
  const k = pruneKernels(wasm);
  const a = wasm.arena;
  const { rows, cols } = problem;
  const percDamp = opts.percDamp ?? 0.01;
  let blockSize = opts.blockSize ?? 128;
  if (pattern.kind === "nm") blockSize = Math.max(pattern.m, Math.floor(blockSize / pattern.m) * pattern.m);

  const Hinv = a.alloc(cols * cols);
  const hinv = a.f32(Hinv, cols * cols);
  const { dead, damp } = a.scoped(() => dampedInverse(a.f32(problem.H, cols * cols), cols, percDamp, a.f32(a.alloc(cols * cols), cols * cols), hinv));

  // the weights to prune: W₀, or W* = B·(H + δI)⁻¹ under error correction
  if (problem.corrected) await matmul(wasm, problem.B, Hinv, W, rows, cols, cols, "W* = B·H⁻¹");
  else a.f32(W, rows * cols).set(a.f32(problem.W0, rows * cols));
  let w = a.f32(W, rows * cols);
  for (const j of dead) for (let r = 0; r < rows; r++) w[r * cols + j] = 0;

  if (!choleskyUpper(hinv, cols)) throw new WasmError(`sparsegpt: Cholesky of H⁻¹ (width ${cols}) failed`);

  const Err1 = a.alloc(rows * blockSize);
  const S = a.alloc(rows * blockSize);
  const M = a.alloc(rows * blockSize);
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const i2 = Math.min(i1 + blockSize, cols);
    const count = i2 - i1;
    w = a.f32(W, rows * cols); // views are refreshed after any allocation (the memory may have grown)
    const err1 = a.f32(Err1, rows * count);
    const s = a.f32(S, rows * count);
    const prune = new Uint8Array(rows * count); // 1 = pruned (mask1)
    if (pattern.kind === "unstructured") {
      for (let r = 0; r < rows; r++) {
        for (let i = 0; i < count; i++) {
          const d = hinv[(i1 + i) * cols + i1 + i];
          const x = w[r * cols + i1 + i];
          s[r * count + i] = (x * x) / (d * d);
        }
      }
      const total = rows * count;
      k.f32_topk_mask(S, M, 1, total, total - Math.round(pattern.sparsity * total));
      const keep = a.f32(M, total);
      for (let t = 0; t < total; t++) prune[t] = keep[t] === 0 ? 1 : 0;
    }
    for (let i = 0; i < count; i++) {
      const j = i1 + i;
      const hrow = j * cols;
      const d = hinv[hrow + j];
      if (pattern.kind === "nm" && i % pattern.m === 0) {
        const m = pattern.m;
        const sg = a.f32(S, rows * m);
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < m; c++) {
            const dd = hinv[(j + c) * cols + j + c];
            const x = w[r * cols + j + c];
            sg[r * m + c] = (x * x) / (dd * dd);
          }
        }
        k.f32_nm_mask(S, M, rows, m, pattern.n, m);
        const keep = a.f32(M, rows * m);
        for (let r = 0; r < rows; r++) for (let c = 0; c < m; c++) prune[r * count + i + c] = keep[r * m + c] === 0 ? 1 : 0;
      }
      for (let r = 0; r < rows; r++) {
        const ro = r * cols;
        const wv = w[ro + j];
        const q = prune[r * count + i] ? 0 : wv;
        const e = (wv - q) / d;
        err1[r * count + i] = e;
        if (e !== 0) for (let c = j + 1; c < i2; c++) w[ro + c] -= e * hinv[hrow + c];
        w[ro + j] = q;
      }
    }
    if (i2 < cols) {
      // W[:, i2:] −= Err1 · Hinv[i1:i2, i2:]
      await gemmStrided(wasm, Err1, count, Hinv + 4 * (i1 * cols + i2), cols, W + 4 * i2, cols, rows, cols - i2, count, -1, 1, "lazy batch update");
    }
  }
  return { damp, dead: dead.length };
}
