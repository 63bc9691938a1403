/**
 * @file Forward-only gradient estimates: SPSA (Spall 1992) as MeZO (Malladi et al. 2023) uses it, and the
 * central finite differences it is checked against.
 *
 * MINI-LLM (Cheng, Zhang, Shi 2024, "MINI-LLM: Memory-Efficient Structured Pruning for Large Language Models",
 * arXiv:2407.11681, §3) estimates the gradient of its feature-map-sensitivity score with forward passes only.
 * We implement exactly: for a loss L_b(θ) on calibration batch b, directions z_k ∈ {−1, +1}^d (Rademacher,
 * seeded: direction k depends only on (seed, k)) and step ε,
 *
 *     ĝ = (1/K) Σ_{k=0}^{K−1} [ (L_{b(k)}(θ + ε z_k) − L_{b(k)}(θ − ε z_k)) / (2ε) ] · z_k,   b(k) = k mod B,
 *
 * i.e. K two-sided SPSA estimates, each on one calibration batch, averaged. E[z zᵀ] = I makes ĝ an unbiased
 * estimate of ∇L up to the O(ε²) third-order term of the central difference; its variance per coordinate is
 * about (‖∇L‖² − (∂_iL)²)/K, so it falls as 1/K. Rademacher z by default: E[z⁴] = 1 instead of 3, the
 * lower-variance choice for SPSA; `distribution: "gaussian"` draws z ~ N(0, I) as MeZO does (Algorithm 1 of
 * Malladi et al., and MINI-LLM's estimate of the weight gradients), variance ≈ (‖∇L‖² + (∂_iL)²)/K.
 */
import { UsageError } from "../errors.js";
import { fillFromTable, mix, mulberry32Bits, normalTable } from "../util/rng.js";

export const DIRECTION_DISTRIBUTIONS = Object.freeze(["rademacher", "gaussian"] as const);
export type DirectionDistribution = (typeof DIRECTION_DISTRIBUTIONS)[number];

export interface SpsaOptions {
  /** number of directions K */
  directions: number;
  /** perturbation size ε */
  eps: number;
  seed: number;
  /** calibration batches B: direction k uses batch k mod B */
  batches: number;
  /** of the directions z_k (default rademacher) */
  distribution?: DirectionDistribution;
  onDirection?(k: number, K: number): void;
}

/** The Rademacher direction number `k` of `seed`, d entries ±1 (mulberry32 on seed ⊕ k). */
export function rademacher(seed: number, k: number, d: number): Float64Array {
  const bits = mulberry32Bits(Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b));
  const z = new Float64Array(d);
  for (let i = 0; i < d; i++) z[i] = bits() & 1 ? 1 : -1;
  return z;
}

/**
 * The Gaussian direction number `k` of `seed`: d samples of N(0, 1) on the 2⁻¹⁶ quantile grid (rng.ts
 * normalTable, two mulberry32 streams seeded by (seed, k)); one table load per entry, for the 10⁵–10⁹
 * coordinates of a model's weights.
 */
export function gaussianDirection(seed: number, k: number, d: number): Float64Array {
  const z = new Float64Array(d);
  fillFromTable(z, 0, d, mix(seed, 2 * k), mix(seed, 2 * k + 1), normalTable());
  return z;
}

function check(o: { eps: number; batches: number }, K?: number): void {
  if (K !== undefined && !(Number.isInteger(K) && K >= 1)) throw new UsageError(`SPSA: directions must be a positive integer, got ${K}`);
  if (!(o.eps > 0 && Number.isFinite(o.eps))) throw new UsageError(`SPSA: eps must be a positive number, got ${o.eps}`);
  if (!(Number.isInteger(o.batches) && o.batches >= 1)) throw new UsageError(`SPSA: batches must be a positive integer, got ${o.batches}`);
}

/**
 * ĝ of `loss(θ, b)` at θ0 (formula in the file header). Returns the running estimates after each K in
 * `checkpoints` too (for the estimator check: how the estimate converges with K, from one run).
 */
export function spsaGradient(
  loss: (theta: Float64Array, batch: number) => number,
  theta0: Float64Array,
  o: SpsaOptions,
  checkpoints: readonly number[] = [],
): { gradient: Float64Array; at: Map<number, Float64Array>; evaluations: number } {
  check(o, o.directions);
  const d = theta0.length;
  const sum = new Float64Array(d);
  const theta = new Float64Array(d);
  const at = new Map<number, Float64Array>();
  for (let k = 0; k < o.directions; k++) {
    const z = o.distribution === "gaussian" ? gaussianDirection(o.seed, k, d) : rademacher(o.seed, k, d);
    const b = k % o.batches;
    for (let i = 0; i < d; i++) theta[i] = theta0[i] + o.eps * z[i];
    const lp = loss(theta, b);
    for (let i = 0; i < d; i++) theta[i] = theta0[i] - o.eps * z[i];
    const lm = loss(theta, b);
    const proj = (lp - lm) / (2 * o.eps);
    for (let i = 0; i < d; i++) sum[i] += proj * z[i];
    if (checkpoints.includes(k + 1)) at.set(k + 1, sum.map((v) => v / (k + 1)));
    o.onDirection?.(k + 1, o.directions);
  }
  return { gradient: sum.map((v) => v / o.directions), at, evaluations: 2 * o.directions };
}

/**
 * ∂L/∂θ_i by central differences, (L̄(θ + εe_i) − L̄(θ − εe_i)) / 2ε with L̄ the mean over all B batches — the
 * exact gradient of the objective ĝ estimates, up to O(ε²), for the coordinates `indices`.
 */
export function finiteDifferenceGradient(
  loss: (theta: Float64Array, batch: number) => number,
  theta0: Float64Array,
  indices: readonly number[],
  o: { eps: number; batches: number },
): Float64Array {
  check(o);
  const theta = Float64Array.from(theta0);
  const mean = (): number => {
    let s = 0;
    for (let b = 0; b < o.batches; b++) s += loss(theta, b);
    return s / o.batches;
  };
  return Float64Array.from(indices, (i) => {
    theta[i] = theta0[i] + o.eps;
    const lp = mean();
    theta[i] = theta0[i] - o.eps;
    const lm = mean();
    theta[i] = theta0[i];
    return (lp - lm) / (2 * o.eps);
  });
}

/** Pearson correlation of two equal-length vectors. */
export function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}
