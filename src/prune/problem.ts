/**
 * @file One operator's pruning problem, everything in the arena (FISTAPruner §3, SparseGPT §3):
 *
 *   f(W) = ‖W·X_pᵀ − W₀·X_dᵀ‖²_F / n = tr(W H Wᵀ) − 2 tr(W Bᵀ) + E
 *
 * with X_p [n, cols] the inputs the operator sees in the pruned model, X_d the dense model's,
 *   H = X_pᵀX_p / n   (cols × cols, symmetric),
 *   B = W₀·(X_dᵀX_p / n)   (rows × cols) — the cross term of intra-layer error correction; without
 *       correction X_d = X_p and B = W₀·H,
 *   E = ‖W₀·X_dᵀ‖² / n = tr(W₀ H_d W₀ᵀ) (targetEnergy), so relErr = f(W)/E.
 *
 * Precision: f is evaluated around W₀, f(W) = tr(D H Dᵀ) + 2 tr(D R₀ᵀ) + f(W₀) with D = W − W₀ and
 * R₀ = W₀H − B (zero without correction, where f(W₀) = 0 too), so a small error is not the difference of
 * three large float32 numbers. Row sums are f32 (kernel), the sum over rows f64.
 */
import type { Wasm } from "../wasm/runtime.js";
import type { Executor } from "../exec/executor.js";
import { UsageError } from "../errors.js";
import { kernels } from "../kernels/index.js";
import type { GramStats } from "./gram.js";
import { matmul } from "../kernels/products.js";
import { gaussianPairs } from "../util/rng.js";

/**
 * What a method is given about one operator: the dense weights, and the calibration statistics it declared
 * (src/prune/stats.ts): none or the column norms (a LightProblem), or the Gram statistics (a GramProblem, the
 * least-squares problem below).
 */
export type OperatorProblem = LightProblem | GramProblem;

export interface LightProblem {
  kind: "light";
  /** out features */
  rows: number;
  /** in features */
  cols: number;
  /** (rows, cols) the dense weights */
  W0: number;
  nTokens: number;
  /** H_jj = ‖x_j‖²/n (the operator's input, the pruned model's under error correction), when collected */
  diag?: Float32Array;
  corrected: boolean;
}

export interface GramProblem {
  kind: "gram";
  /** out features */
  rows: number;
  /** in features */
  cols: number;
  /** (rows, cols) the dense weights */
  W0: number;
  /** (cols, cols) X_pᵀX_p / n */
  H: number;
  /** the diagonal of H (f32 [cols]) */
  diag: Float32Array;
  /** what the method's `prepare` made of H for the operator's group (src/prune/methods/types.ts), if anything */
  prepared?: unknown;
  /** (rows, cols) W₀·X_dᵀX_p / n (= W₀·H without correction); 0 when not formed (problemFromGram `full` false) */
  B: number;
  /** ‖W₀X_d‖² / n; NaN when not formed */
  targetEnergy: number;
  nTokens: number;
  /** true when B ≠ W₀·H (X_d ≠ X_p: intra-layer error correction) */
  corrected: boolean;
  /** (rows, cols) W₀·H − B, 0 when not corrected */
  R0: number;
  /** f(W₀): 0 when not corrected */
  f0: number;
}

/**
 * Builds a problem from arena blocks. Without `B`, B = W₀·H (no correction) and E = tr(W₀HW₀ᵀ) unless given.
 * With `B`, targetEnergy is required. Allocates B (if needed) and R₀ in the arena; the products split their
 * rows over the executor's slots (bit-identical for any split).
 */
export async function createProblem(
  exec: Executor,
  p: { rows: number; cols: number; W0: number; H: number; B?: number; targetEnergy?: number; nTokens?: number },
): Promise<GramProblem> {
  const wasm = exec.wasm;
  const { rows, cols, W0, H } = p;
  const a = wasm.arena;
  const nTokens = p.nTokens ?? 0;
  const h = a.f32(H, cols * cols);
  const diag = Float32Array.from({ length: cols }, (_, j) => h[j * cols + j]!);
  if (p.B === undefined) {
    const B = a.alloc(rows * cols);
    await matmul(exec, W0, H, B, rows, cols, cols, "B = W₀·H");
    const E = p.targetEnergy ?? sumRowDots(wasm, W0, B, rows, cols);
    return { kind: "gram", rows, cols, W0, H, diag, B, targetEnergy: E, nTokens, corrected: false, R0: 0, f0: 0 };
  }
  if (p.targetEnergy === undefined) throw new Error("createProblem: a cross term B needs its targetEnergy");
  const R0 = a.alloc(rows * cols);
  await matmul(exec, W0, H, R0, rows, cols, cols, "W₀·H");
  const w0hw0 = sumRowDots(wasm, W0, R0, rows, cols);
  const w0b = sumRowDots(wasm, W0, p.B, rows, cols);
  const r0 = a.f32(R0, rows * cols);
  const b = a.f32(p.B, rows * cols);
  for (let i = 0; i < r0.length; i++) r0[i] -= b[i];
  const f0 = w0hw0 - 2 * w0b + p.targetEnergy;
  return { kind: "gram", rows, cols, W0, H, diag, B: p.B, targetEnergy: p.targetEnergy, nTokens, corrected: true, R0, f0: Math.max(f0, 0) };
}

/**
 * The problem of the operator with dense weights W0 [rows, stats.cols] from finished Gram statistics. `full` =
 * false asks for H alone (no error correction): B = W₀·H and the target energy E are not formed (each costs a
 * rows×cols² product, more than SparseGPT's own OBS loop), so `B` is 0, `targetEnergy` NaN and no relative error
 * can be measured; `full` = true (the default) forms them.
 */
export async function problemFromGram(exec: Executor, W0: number, rows: number, stats: GramStats, full = true): Promise<GramProblem> {
  const { cols, H, n } = stats;
  if (!stats.cross && !full) {
    const h = exec.wasm.arena.f32(H, cols * cols);
    const diag = Float32Array.from({ length: cols }, (_, j) => h[j * cols + j]!);
    return { kind: "gram", rows, cols, W0, H, diag, B: 0, targetEnergy: NaN, nTokens: n, corrected: false, R0: 0, f0: 0 };
  }
  if (!stats.cross) return createProblem(exec, { rows, cols, W0, H, nTokens: n });
  const a = exec.wasm.arena;
  const B = a.alloc(rows * cols);
  await matmul(exec, W0, stats.cross.C, B, rows, cols, cols, "B = W₀·C");
  const m = a.mark();
  const G = a.alloc(rows * cols);
  await matmul(exec, W0, stats.cross.Hd, G, rows, cols, cols, "W₀·H_d");
  const targetEnergy = sumRowDots(exec.wasm, W0, G, rows, cols);
  a.release(m);
  return createProblem(exec, { rows, cols, W0, H, B, targetEnergy, nTokens: n });
}

/** Σ_r Σ_j a[r,j]·b[r,j], rows in f32 by the kernel, summed in f64. */
export function sumRowDots(wasm: Wasm, a: number, b: number, rows: number, cols: number): number {
  return wasm.arena.scoped(() => {
    const out = wasm.arena.alloc(rows);
    kernels(wasm).f32_row_dot(a, b, out, rows, cols);
    let s = 0;
    for (const v of wasm.arena.f32(out, rows)) s += v;
    return s;
  });
}

/**
 * Per-row objective relative to W₀: out[r] = d_r H d_rᵀ + 2 d_r·R₀_r with d = W − W₀, so that
 * f(W) = Σ_r out[r] + f(W₀). The rows are independent, which is what per-row safeguards compare. The product
 * D·H splits its rows over the executor's slots.
 */
export async function rowObjectives(exec: Executor, problem: GramProblem, W: number, out = new Float64Array(problem.rows)): Promise<Float64Array> {
  const wasm = exec.wasm;
  const { rows, cols } = problem;
  const a = wasm.arena;
  const n = rows * cols;
  const m = a.mark();
  try {
    const D = a.alloc(n);
    const G = a.alloc(n);
    const dots = a.alloc(rows);
    const d = a.f32(D, n);
    const w = a.f32(W, n);
    const w0 = a.f32(problem.W0, n);
    for (let i = 0; i < n; i++) d[i] = w[i] - w0[i];
    await matmul(exec, D, problem.H, G, rows, cols, cols, "objective");
    if (problem.corrected) {
      const g = a.f32(G, n);
      const r0 = a.f32(problem.R0, n);
      for (let i = 0; i < n; i++) g[i] += 2 * r0[i];
    }
    kernels(wasm).f32_row_dot(D, G, dots, rows, cols);
    const dv = a.f32(dots, rows);
    for (let r = 0; r < rows; r++) out[r] = dv[r];
    return out;
  } finally {
    a.release(m);
  }
}

/** f(W) = ‖W X_p − W₀ X_d‖²/n (clamped at 0 against rounding). */
export async function objective(exec: Executor, problem: GramProblem, W: number): Promise<number> {
  let s = problem.f0;
  for (const v of await rowObjectives(exec, problem, W)) s += v;
  return Math.max(s, 0);
}

/** f(W) / E: the relative reconstruction error ‖W X_p − W₀ X_d‖² / ‖W₀ X_d‖². */
export async function relativeError(exec: Executor, problem: GramProblem, W: number): Promise<number> {
  return problem.targetEnergy > 0 ? (await objective(exec, problem, W)) / problem.targetEnergy : 0;
}

/** The problem as a GramProblem, or a UsageError: `method` needs the Gram statistics. */
export function gramProblem(problem: OperatorProblem, method: string): GramProblem {
  if (problem.kind !== "gram") throw new UsageError(`${method} needs the Gram statistics H = XᵀX/n of its operator (a light problem was given)`);
  return problem;
}

/** The fraction of exact zeros of W [rows, cols]. */
export function measuredSparsity(wasm: Wasm, W: number, rows: number, cols: number): number {
  return wasm.arena.scoped(() => {
    const nnz = wasm.arena.alloc(rows);
    kernels(wasm).f32_row_nnz(W, nnz, rows, cols);
    let s = 0;
    for (const v of wasm.arena.i32(nnz, rows)) s += v;
    return rows * cols > 0 ? 1 - s / (rows * cols) : 0;
  });
}

/**
 * A seeded synthetic operator for tests and benchmarks: W₀ ~ N(0, 1/cols); X [tokens, cols] with LLM-like
 * activations (`correlated`: 8 shared latent factors plus heavy-tailed per-column scales, a few outlier
 * columns ×10; otherwise i.i.d. N(0,1)). Returns arena blocks; H (and the problem) are built by the caller.
 */
export function syntheticOperator(
  wasm: Wasm, p: { rows: number; cols: number; tokens: number; seed: number; correlated?: boolean },
): { W0: number; X: number } {
  const { rows, cols, tokens } = p;
  const rnd = gaussianPairs(p.seed);
  const a = wasm.arena;
  const W0 = a.alloc(rows * cols);
  const X = a.alloc(tokens * cols);
  const w = a.f32(W0, rows * cols);
  const sw = 1 / Math.sqrt(cols);
  for (let i = 0; i < w.length; i++) w[i] = rnd() * sw;
  const x = a.f32(X, tokens * cols);
  if (!p.correlated) {
    for (let i = 0; i < x.length; i++) x[i] = rnd();
    return { W0, X };
  }
  const F = 8;
  const V = new Float64Array(F * cols);
  for (let i = 0; i < V.length; i++) V[i] = rnd();
  const scale = new Float64Array(cols);
  for (let j = 0; j < cols; j++) scale[j] = Math.exp(0.5 * rnd()) * (j % 97 === 5 ? 10 : 1);
  const u = new Float64Array(F);
  for (let t = 0; t < tokens; t++) {
    for (let f = 0; f < F; f++) u[f] = rnd();
    for (let j = 0; j < cols; j++) {
      let s = 0.5 * rnd();
      for (let f = 0; f < F; f++) s += u[f] * V[f * cols + j];
      x[t * cols + j] = s * scale[j] * 0.35;
    }
  }
  return { W0, X };
}
