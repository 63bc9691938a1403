/**
 * @file The sparsity pattern is a value, not a branch (STYLE.md §7): parsed once from `--sparsity` and
 * passed to every method, which only changes how its mask is chosen.
 *  - unstructured: a fraction `sparsity` ∈ [0, 1) of the weights is zeroed, within the scope each method's
 *    paper uses (magnitude: the whole operator; Wanda, FISTA: each output row; SparseGPT: 128-column blocks);
 *  - N:M: **N kept of every M** consecutive inputs of each output row (2:4 and 4:8 as NVIDIA Ampere and
 *    SparseGPT/Wanda use them), so the sparsity is 1 − N/M.
 */
import { UsageError } from "../errors.js";

export type Pattern = { kind: "unstructured"; sparsity: number } | { kind: "nm"; n: number; m: number };

/** "0.5" → unstructured 50 %; "2:4" → 2 kept of every 4. */
export function parsePattern(sparsity: string): Pattern {
  const s = sparsity.trim();
  const nm = /^(\d+):(\d+)$/.exec(s);
  if (nm) {
    const n = Number(nm[1]);
    const m = Number(nm[2]);
    if (n < 1) throw new UsageError(`--sparsity ${s}: N:M needs N ≥ 1 kept of every M, got N = ${n}`);
    if (n >= m) throw new UsageError(`--sparsity ${s}: N:M needs N < M (N kept of every M), got ${n} ≥ ${m}`);
    return { kind: "nm", n, m };
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) {
    throw new UsageError(`--sparsity "${sparsity}": expected a fraction in [0, 1) such as 0.5, or N:M such as 2:4`);
  }
  const x = Number(s);
  if (!(x >= 0 && x < 1)) throw new UsageError(`--sparsity ${s}: a fraction must be in [0, 1), got ${x}`);
  return { kind: "unstructured", sparsity: x };
}

/** Throws UsageError when an N:M pattern does not tile an operator of `cols` inputs. */
export function checkPatternFits(pattern: Pattern, cols: number, opName: string): void {
  if (pattern.kind === "nm" && cols % pattern.m !== 0) {
    throw new UsageError(`${opName}: ${pattern.n}:${pattern.m} sparsity needs the input width to be a multiple of ${pattern.m}, got ${cols}`);
  }
}

/** The fraction of zeros the pattern asks for. */
export function targetSparsity(pattern: Pattern): number {
  return pattern.kind === "nm" ? 1 - pattern.n / pattern.m : pattern.sparsity;
}

/** Weights kept per row of `cols` under the pattern (per-row scope; N:M keeps exactly N·cols/M). */
export function keptPerRow(pattern: Pattern, cols: number): number {
  return pattern.kind === "nm" ? (cols / pattern.m) * pattern.n : cols - Math.round(pattern.sparsity * cols);
}

export function formatPattern(pattern: Pattern): string {
  return pattern.kind === "nm" ? `${pattern.n}:${pattern.m}` : `${pattern.sparsity}`;
}
