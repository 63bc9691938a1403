/**
 * @file FISTAPruner (Zhao et al. 2024, "A Convex-optimization-based Layer-wise Post-training Pruner for
 * Large Language Models"): per operator, the lasso
 *
 *   min_W  f(W) + Σ_r λ_r‖W_r‖₁,   f(W) = tr(W H Wᵀ) − 2 tr(W Bᵀ) + E  (eq. 4, with error correction eq. 6)
 *
 * solved by FISTA on H alone (∇f = 2(WH − B), step 1/L with L = 2·λmax(H) from a seeded power iteration,
 * Nesterov momentum with the gradient restart of O'Donoghue & Candès), then rounded to the exact pattern.
 *
 * The problem separates by output rows given H, so λ is bisected **per row** (geometrically, all rows at
 * once: one FISTA run per bisection step with a vector λ) until each row's nonzero count meets the row's
 * target — the paper's per-row scope for unstructured sparsity; for N:M the row target is N·cols/M.
 * Then:
 *  1. projection to the exact pattern by |z| with z = W − η∇f(W) the pre-threshold point: nonzeros rank by
 *     |w| (+ηλ), zeros by their gradient, so a row short of its count is filled by the most useful inputs;
 *     per-row top-k (unstructured) or top-N per group of M (N:M), kernels in assembly/f32-nm.ts;
 *  2. refit of the kept weights: FISTA with the mask fixed and λ = 0 (accelerated projected gradient);
 *  3. safeguard, per row (rows are independent problems): the result row is the best of {warm start,
 *     warm start refitted on its own mask, FISTA path}, so it is never worse than the best baseline
 *     (warm start = per-row best of `warmStart` methods; Wanda and SparseGPT by default).
 * The FISTA iteration is two kernels (assembly/f32-fista.ts): G = Y·H and the fused prox/momentum step.
 * Default (FistaOptions.lassoPath = false): the lasso path is skipped — on stories260K's real operators it
 * rarely wins and costs ~60 % of the W·H products; candidates are then the baselines, their refits and IHT.
 * Every FISTA run splits its rows over the worker threads when there is a pool (src/parallel/rows.ts).
 */
import type { Wasm } from "../../wasm/runtime.js";
import type { Executor } from "../../exec/executor.js";
import { keptPerRow, type Pattern } from "../pattern.js";
import { gramProblem, rowObjectives, type GramProblem } from "../problem.js";
import { matmulNt } from "../../kernels/products.js";
import { fistaRows } from "../row-tasks.js";
import { mulberry32 } from "../../util/rng.js";
import { defineMethod, selectMask, solveInto } from "./common.js";
import { magnitude } from "./magnitude.js";
import { wanda } from "./wanda.js";
import { sparsegpt } from "./sparsegpt.js";
import type { FistaOptions, PruneMethod, PruneOptions } from "./types.js";
import { kernels } from "../../kernels/index.js";
import type { Kernels } from "../../wasm/contract.js";

const BASELINES = { magnitude, wanda, sparsegpt } as const;

export const fista = defineMethod({
  name: "fista",
  description: "FISTAPruner: per-row lasso by FISTA, λ by bisection, projection, refit, safeguarded",
  // not claimed: its warm start includes SparseGPT (unstructured masks span rows); an operator stays whole
  rowsIndependent: () => false,
  stats: (corrected) => (corrected ? "cross" : "gram"),
  // the solver's iterates (4), mask and score, the two baselines and their refits, IHT's; SparseGPT's factor
  memory: (rows, cols, corrected) => [["FISTA iterates and candidates (11 × W)", 11 * rows * cols], ...sparsegpt.memory(rows, cols, corrected).slice(0, corrected ? 2 : 1)],
  needsFullProblem: true,
  // its SparseGPT candidate shares the group's factors of H
  prepare: (exec, H, cols, corrected, opts) =>
    (opts?.fista?.warmStart ?? ["wanda", "sparsegpt"]).includes("sparsegpt") ? sparsegpt.prepare!(exec, H, cols, corrected, opts) : Promise.resolve(undefined),
  async solve(exec, problem, pattern, W, opts = {}) {
    const { fMix, ...info } = await fistaPrune(exec, gramProblem(problem, "fista"), pattern, W, opts);
    return { info, objective: fMix };
  },
});

/** Buffers and constants of FISTA on one problem. */
export class FistaSolver {
  readonly k: Kernels;
  readonly rows: number;
  readonly cols: number;
  readonly n: number;
  /** 1/L */
  eta = 0;
  /** total W·H products so far */
  iterations = 0;
  private readonly Y: number;
  private readonly G: number;
  private readonly Wa: number;
  private readonly Wb: number;
  private readonly T: number;
  readonly wasm: Wasm;

  constructor(
    readonly exec: Executor,
    readonly problem: GramProblem,
  ) {
    const wasm = exec.wasm;
    this.wasm = wasm;
    this.k = kernels(wasm);
    this.rows = problem.rows;
    this.cols = problem.cols;
    this.n = this.rows * this.cols;
    const a = wasm.arena;
    this.Y = a.alloc(this.n);
    this.G = a.alloc(this.n);
    this.Wa = a.alloc(this.n);
    this.Wb = a.alloc(this.n);
    this.T = a.alloc(this.rows);
  }

  /**
   * G = W·H by the dense f32_gemm_nt (W·Hᵀ = W·H, H symmetric; ~35 % faster than f32_fista_wh), row blocks over
   * the executor's slots.
   */
  wh(W: number, G: number): Promise<void> {
    return matmulNt(this.exec, W, this.problem.H, G, this.rows, this.cols, "FISTA W·H");
  }

  /** λmax(H) by power iteration from a seeded random vector; sets η = 1/(2·1.02·λmax). */
  setStep(powerIters: number, seed: number): number {
    const { cols, wasm } = this;
    const a = wasm.arena;
    const lmax = a.scoped(() => {
      const v = a.alloc(cols);
      const u = a.alloc(cols);
      const rnd = mulberry32(seed);
      const vv = a.f32(v, cols);
      for (let j = 0; j < cols; j++) vv[j] = rnd() - 0.5;
      let lam = 0;
      for (let it = 0; it < powerIters; it++) {
        normalize(a.f32(v, cols));
        this.k.f32_fista_wh(v, this.problem.H, u, 1, cols, cols);
        const uu = a.f32(u, cols);
        const vw = a.f32(v, cols);
        let r = 0;
        for (let j = 0; j < cols; j++) r += vw[j] * uu[j];
        lam = r;
        vw.set(uu);
      }
      return lam;
    });
    // power iteration approaches λmax from below: 2 % margin keeps 1/L a safe step
    this.eta = lmax > 0 ? 1 / (2 * 1.02 * lmax) : 0;
    return lmax;
  }

  /**
   * `iters` FISTA steps from `start` with per-row λ (arena f32 [rows]) and an optional 0/1 mask; result in
   * `out` (may equal start).
   */
  async solve(start: number, out: number, lam: number, mask: number, iters: number): Promise<void> {
    await this.rowBlocks("solve", start, out, lam, mask, iters);
  }

  /** solve / iht on row blocks (src/prune/row-tasks.ts; one block per slot when the work pays). */
  private async rowBlocks(
    mode: "solve" | "iht", start: number, out: number, lam: number, mask: number, iters: number, pattern?: Pattern,
  ): Promise<void> {
    const { rows, cols } = this;
    // a row's iterations touch only that row (and H, B): the blocks run as one task each
    await fistaRows(this.exec, {
      mode, rows, cols, H: this.problem.H, B: this.problem.B, Y: this.Y, G: this.G, Wa: this.Wa, Wb: this.Wb,
      T: this.T, lam, mask, start, out, iters, eta: this.eta,
      pattern: pattern && (pattern.kind === "nm" ? { kind: "nm", n: pattern.n, m: pattern.m } : { kind: "unstructured", keep: keptPerRow(pattern, cols) }),
    }, `FISTA ${mode}`);
    this.iterations += iters;
  }

  /**
   * Iterative hard thresholding: W ← P(W − 2η(W·H − B)) for `iters` steps, P the projection onto the
   * pattern by |w| (kernels), from `start` into `out` (may equal start). `mask`, `score`: scratch [rows, cols].
   */
  async iht(start: number, out: number, lam0: number, mask: number, pattern: Pattern, iters: number): Promise<void> {
    // t = 1 every step (no momentum, Y = W⁺), λ = 0, projection by |w| per row (selectMask "row")
    this.wasm.arena.f32(lam0, this.rows).fill(0);
    await this.rowBlocks("iht", start, out, lam0, mask, iters, pattern);
  }

  /**
   * Per-row geometric bisection of λ_r in [λmax_r·1e−6, λmax_r], λmax_r = 2·max|B_r| (= ‖∇f(0)‖∞, above
   * which W_r = 0): `steps` FISTA runs of `iters` from the previous solution (W in place), each moving a
   * row's bracket by whether it kept more than `keep` weights, then `finalIters` at the bracket's geometric
   * middle. `lam` (arena [rows]) returns the final λ. Returns the nonzeros per row.
   */
  async bisect(W: number, lam: number, keep: number, steps: number, iters: number, finalIters: number): Promise<Int32Array> {
    const a = this.wasm.arena;
    const { rows, cols, n } = this;
    const lo = new Float64Array(rows);
    const hi = new Float64Array(rows);
    const b = a.f32(this.problem.B, n);
    for (let r = 0; r < rows; r++) {
      let mx = 0;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, Math.abs(b[r * cols + j]));
      hi[r] = Math.max(2 * mx, 1e-30);
      lo[r] = hi[r] * 1e-6;
    }
    const setLam = () => {
      const l = a.f32(lam, rows);
      for (let r = 0; r < rows; r++) l[r] = Math.sqrt(lo[r] * hi[r]);
    };
    const m = a.mark();
    try {
      const nnz = a.alloc(rows);
      for (let step = 0; step < steps; step++) {
        setLam();
        await this.solve(W, W, lam, 0, iters);
        this.k.f32_row_nnz(W, nnz, rows, cols);
        const z = a.i32(nnz, rows);
        const l = a.f32(lam, rows);
        for (let r = 0; r < rows; r++) {
          if (z[r] > keep) lo[r] = l[r];
          else hi[r] = l[r];
        }
      }
      setLam();
      await this.solve(W, W, lam, 0, finalIters);
      this.k.f32_row_nnz(W, nnz, rows, cols);
      return Int32Array.from(a.i32(nnz, rows));
    } finally {
      a.release(m);
    }
  }

  /** score = |W − 2η(W·H − B)| (the pre-threshold point of a gradient step). */
  async gradientScore(W: number, score: number): Promise<void> {
    const a = this.wasm.arena;
    const { n } = this;
    await this.wh(W, this.G);
    const w = a.f32(W, n);
    const g = a.f32(this.G, n);
    const b = a.f32(this.problem.B, n);
    const s = a.f32(score, n);
    const c = 2 * this.eta;
    for (let i = 0; i < n; i++) s[i] = Math.abs(w[i] - c * (g[i] - b[i]));
  }
}

async function fistaPrune(
  exec: Executor, problem: GramProblem, pattern: Pattern, W: number, opts: PruneOptions,
): Promise<Record<string, number | string> & { fMix: number }> {
  const wasm = exec.wasm;
  const o: Required<Omit<FistaOptions, "budget">> = {
    lassoPath: false, bisectSteps: 16, itersPerStep: 60, finalIters: 200, refitIters: 150, powerIters: 60, ihtIters: 100,
    warmStart: ["wanda", "sparsegpt"], seed: 1234, ...opts.fista, ...budgetIters(withDefaultBudget(opts.fista)),
  };
  let objectives = 0;
  const objectiveOf = async (Wc: number) => {
    objectives++;
    return rowObjectives(exec, problem, Wc);
  };
  const a = wasm.arena;
  const k = kernels(wasm);
  const { rows, cols } = problem;
  const n = rows * cols;
  const keep = keptPerRow(pattern, cols);

  const solver = opts.fistaSolver?.(exec, problem) ?? new FistaSolver(exec, problem);
  const lmax = solver.setStep(o.powerIters, o.seed);
  const lam = a.alloc(rows);
  const mask = a.alloc(n);
  const score = a.alloc(n);

  // ---- candidates: each baseline, and the baseline refitted on its own support ----------------------
  const cands: Candidate[] = [];
  for (const name of o.warmStart) {
    const Wb = a.alloc(n);
    await solveInto(exec, BASELINES[name], problem, pattern, Wb, opts);
    cands.push({ name, W: Wb, f: await objectiveOf(Wb) });
    const Wr = a.alloc(n);
    const wb = a.f32(Wb, n);
    const m = a.f32(mask, n);
    for (let i = 0; i < n; i++) m[i] = wb[i] !== 0 ? 1 : 0;
    a.f32(lam, rows).fill(0);
    await solver.solve(Wb, Wr, lam, mask, o.refitIters);
    cands.push({ name: `${name}+refit`, W: Wr, f: await objectiveOf(Wr) });
  }
  const total = (f: Float64Array) => f.reduce((s, v) => s + v, problem.f0);
  let Wws = cands[0].W;
  let fBest = Infinity;
  for (const c of cands) {
    const fc = total(c.f);
    if (fc < fBest) [fBest, Wws] = [fc, c.W];
  }

  // ---- candidate (opt-in, see FistaOptions.lassoPath): the lasso path, λ bisected per row -------------
  const nnz = a.alloc(rows);
  let lamMedian = 0;
  if (o.lassoPath) {
    const Wl = a.alloc(n);
    a.f32(Wl, n).set(a.f32(Wws, n));
    await solver.bisect(Wl, lam, keep, o.bisectSteps, o.itersPerStep, o.finalIters);
    lamMedian = median(a.f32(lam, rows));
    await solver.gradientScore(Wl, score);
    selectMask(wasm, score, mask, rows, cols, pattern, "row");
    k.f32_mask_mul(Wl, mask, Wl, n);
    a.f32(lam, rows).fill(0);
    await solver.solve(Wl, Wl, lam, mask, o.refitIters);
    cands.push({ name: "lasso", W: Wl, f: await objectiveOf(Wl) });
  }

  // ---- safeguard -------------------------------------------------------------------------------------
  // Rows are independent problems, but only candidates that keep exactly `keep` weights in every row
  // (all N:M candidates; Wanda-like per-row masks and the lasso path for unstructured) may be mixed row by
  // row without changing the operator's sparsity. SparseGPT's per-block mask is taken or left whole.

  // ---- candidate: iterative hard thresholding from the best per-row-exact candidate, then refit --------
  if (o.ihtIters > 0) {
    const Wi = a.alloc(n);
    // the lasso solution when there is one, else the best candidate IHT may start from
    let start = o.lassoPath ? cands[cands.length - 1].W : cands[0].W;
    let fs = o.lassoPath ? total(cands[cands.length - 1].f) : Infinity;
    for (const c of cands) {
      if (pattern.kind === "unstructured" && !c.name.startsWith("wanda")) continue;
      if (total(c.f) < fs) [fs, start] = [total(c.f), c.W];
    }
    await solver.iht(start, Wi, lam, mask, pattern, o.ihtIters);
    a.f32(lam, rows).fill(0);
    await solver.solve(Wi, Wi, lam, mask, o.refitIters);
    cands.push({ name: "iht", W: Wi, f: await objectiveOf(Wi) });
  }
  const rowExact = (c: Candidate) => {
    if (pattern.kind === "nm") return true;
    k.f32_row_nnz(c.W, nnz, rows, cols);
    return a.i32(nnz, rows).every((z) => z === keep);
  };
  const mixable = cands.filter(rowExact);
  const out = a.f32(W, n);
  const wins: Record<string, number> = {};
  let fMix = Infinity;
  if (mixable.length) {
    const fm = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let best = mixable[0];
      for (const c of mixable) if (c.f[r] < best.f[r]) best = c;
      fm[r] = best.f[r];
      wins[best.name] = (wins[best.name] ?? 0) + 1;
      out.set(a.f32(best.W, n).subarray(r * cols, (r + 1) * cols), r * cols);
    }
    fMix = total(fm);
  }
  let chosen = "mixed";
  for (const c of cands) {
    if (mixable.includes(c)) continue;
    const fc = total(c.f);
    if (fc < fMix) {
      fMix = fc;
      chosen = c.name;
      out.set(a.f32(c.W, n));
    }
  }
  const rel = (f: number) => (problem.targetEnergy > 0 ? Math.max(f, 0) / problem.targetEnergy : 0);
  return {
    fMix, // f(W) of the result (the safeguard's), for its relative error
    lambda: lamMedian,
    lambdaMaxH: lmax,
    iterations: solver.iterations,
    // the cost: FISTA/IHT iterations (one W·H each) and candidate objectives (one D·H each)
    products: solver.iterations + objectives,
    chosen: chosen === "mixed" ? Object.entries(wins).map(([k, v]) => `${k}:${v}`).join(",") : chosen,
    warmRelErr: rel(Math.min(...cands.filter((c) => c.name.endsWith("refit")).map((c) => total(c.f)))),
    ...Object.fromEntries(cands.map((c) => [`relErr_${c.name}`, rel(total(c.f))])),
  };
}

/**
 * The default cost of FISTA: 60 W·H products per operator. Measured on stories260K (fista + error correction,
 * 128 calibration paragraphs, 300 eval paragraphs; `bench methods --methods fista --fista-budgets …`): perplexity at 50% / 2:4 for budgets
 * 15, 30, 60, 100, 150, 250, 555 (the former default): 12.86 / 18.49, 12.43 / 17.82, 12.10 / 17.38,
 * 12.02 / 17.49, 11.85 / 17.38, 11.82 / 17.33, 12.00 / 17.38 — 60 is within 1% of 555 at a ninth of the cost.
 */
export const DEFAULT_FISTA_BUDGET = 60;

/** The budget in force: the one given, else the default unless iterations were set explicitly. */
function withDefaultBudget(o: FistaOptions = {}): FistaOptions {
  if (o.budget !== undefined || o.refitIters !== undefined || o.ihtIters !== undefined) return o;
  return { ...o, budget: DEFAULT_FISTA_BUDGET };
}

/**
 * The iterations a budget of `budget` W·H products per operator buys (FistaOptions.budget): one objective per
 * candidate (each baseline, its refit, IHT), the rest split as the defaults are, refit : IHT = 3 : 2 (150 : 100
 * at the full default, 555 products), the three refits and IHT in (3·R + I) = 11/3·R.
 */
export function budgetIters(o: FistaOptions = {}): Partial<FistaOptions> {
  if (o.budget === undefined) return {};
  const warm = (o.warmStart ?? ["wanda", "sparsegpt"]).length;
  const objectives = 2 * warm + 1 + (o.lassoPath ? 1 : 0);
  const q = Math.max(0, o.budget - objectives);
  const refitIters = Math.floor((3 * q) / 11);
  return { refitIters, ihtIters: Math.max(0, q - 3 * refitIters) };
}

interface Candidate {
  name: string;
  W: number;
  /** per-row objective relative to W₀ */
  f: Float64Array;
}

function normalize(v: Float32Array): void {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  for (let i = 0; i < v.length; i++) v[i] *= inv;
}

function median(v: Float32Array): number {
  const s = Float64Array.from(v).sort();
  return s.length ? s[s.length >> 1] : 0;
}
