/**
 * @file `wasprune bench prune`: single-thread speed of the FISTA pruner's pieces on 768x768 and 3072x768
 * operators (rows x cols) with H = XᵀX/n from seeded random data (n = 2048 tokens):
 *  - the W·H step alone (assembly/f32-fista.ts → f32_gemm_strided), GFLOP/s = 2·rows·cols²/s, next to the
 *    dense f32_gemm_nt kernel on the same product (W·Hᵀ = W·H for symmetric H) when that kernel exists;
 *  - one FISTA solve at a fixed λ (100 iterations): iterations/s and GFLOP/s of its W·H work over the
 *    whole iteration time (so the fused prox/momentum step's cost shows as the gap to the W·H figure);
 *  - one full per-row λ bisection with the method's defaults (16 steps x 60 iterations + 200 final).
 * `quick`: 30-iteration solve and a 6 x 15 + 30 search.
 */
import { createWasm } from "../src/wasm/runtime.js";
import { GramCollector } from "../src/prune/gram.js";
import { problemFromGram, syntheticOperator } from "../src/prune/problem.js";
import { FistaSolver } from "../src/prune/methods/fista.js";
import { openExecutor } from "../src/workers/index.js";
import { kernels } from "../src/kernels/index.js";

export interface BenchPruneRow {
  rows: number;
  cols: number;
  /** W·H alone */
  whGflops: number;
  /** f32_gemm_nt on W·Hᵀ, null when the kernel is not built */
  gemmNtGflops: number | null;
  solveIters: number;
  solveItersPerSec: number;
  /** 2·rows·cols² per iteration over the whole iteration time */
  solveGflops: number;
  searchIters: number;
  searchSeconds: number;
  /** rows whose nonzero count after the search is within 2 % of cols of the target */
  searchRowsOnTarget: number;
}

export async function benchPrune(opts: { json: boolean; quick?: boolean }): Promise<BenchPruneRow[]> {
  const out: BenchPruneRow[] = [];
  const solveIters = opts.quick ? 30 : 100;
  const [steps, perStep, final] = opts.quick ? [6, 15, 30] : [16, 60, 200];
  for (const [rows, cols] of [[768, 768], [3072, 768]] as const) {
    const wasm = createWasm(256 << 20);
    const a = wasm.arena;
    const k = kernels(wasm);
    const tokens = 2048;
    const { W0, X } = syntheticOperator(wasm, { rows, cols, tokens, seed: 42 });
    const exec = openExecutor(wasm, 1);
    const g = new GramCollector(exec, cols);
    await g.addBatches([{ xp: X, xd: X, T: tokens }]);
    const problem = await problemFromGram(exec, W0, rows, g.finish());
    const flops = 2 * rows * cols * cols;
    const G = a.alloc(rows * cols);

    const timeIt = (fn: () => void, minMs: number) => {
      fn();
      let reps = 0;
      const t0 = performance.now();
      do {
        fn();
        reps++;
      } while (performance.now() - t0 < minMs);
      return (performance.now() - t0) / 1000 / reps;
    };
    const budget = opts.quick ? 200 : 1000;
    const whGflops = flops / timeIt(() => k.f32_fista_wh(W0, problem.H, G, rows, cols, cols), budget) / 1e9;
    let gemmNtGflops: number | null = null;
    {
      const scratch = a.allocBytes(k.f32_gemm_nt_scratch(rows, cols, cols));
      gemmNtGflops = flops / timeIt(() => k.f32_gemm_nt(W0, problem.H, G, rows, cols, cols, 0, scratch), budget) / 1e9;
    }

    const solver = new FistaSolver(exec, problem);
    solver.setStep(60, 1);
    const lam = a.put(new Float32Array(rows).fill(0.01));
    const W = a.alloc(rows * cols);
    a.f32(W, rows * cols).set(a.f32(W0, rows * cols));
    let t0 = performance.now();
    await solver.solve(W, W, lam, 0, solveIters);
    const solveSec = (performance.now() - t0) / 1000;

    a.f32(W, rows * cols).set(a.f32(W0, rows * cols));
    const keep = cols / 2;
    t0 = performance.now();
    const before = solver.iterations;
    const nnz = await solver.bisect(W, lam, keep, steps, perStep, final);
    const searchSeconds = (performance.now() - t0) / 1000;
    const tol = Math.max(1, Math.round(0.02 * cols));
    const row: BenchPruneRow = {
      rows, cols, whGflops, gemmNtGflops,
      solveIters, solveItersPerSec: solveIters / solveSec, solveGflops: (flops * solveIters) / solveSec / 1e9,
      searchIters: solver.iterations - before, searchSeconds,
      searchRowsOnTarget: nnz.filter((z) => Math.abs(z - keep) <= tol).length,
    };
    out.push(row);
    if (!opts.json) {
      if (out.length === 1) {
        console.log("operator     W·H GFLOP/s  gemm_nt GFLOP/s  solve it/s  solve GFLOP/s  λ search (iters, s, rows on target)");
      }
      console.log(
        `${`${rows}x${cols}`.padEnd(12)} ${row.whGflops.toFixed(1).padStart(11)}  ${(row.gemmNtGflops?.toFixed(1) ?? "-").padStart(15)}  ` +
          `${row.solveItersPerSec.toFixed(1).padStart(10)}  ${row.solveGflops.toFixed(1).padStart(13)}  ` +
          `${row.searchIters} it, ${row.searchSeconds.toFixed(1)} s, ${row.searchRowsOnTarget}/${rows}`,
      );
    }
  }
  return out;
}
