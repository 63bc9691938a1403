/**
 * @file The raw exports of the pruning kernels in build/kernels.wasm (assembly/f32-gram.ts, f32-fista.ts,
 * f32-nm.ts), in the style of ./api.ts: pointers are byte offsets into the shared memory, sizes are element
 * counts, matrices are row-major f32, kernels never allocate. `pruneKernels(wasm)` gives them typed.
 */
import type { Wasm } from "../wasm/runtime.js";
import { WasmError } from "../errors.js";

export interface PruneKernelApi {
  // ---- assembly/f32-gram.ts ------------------------------------------------------------------------
  /**
   * C[M,N] (+)= alpha · op(A)·B with op(A)(i,k) at float offset i·sai + k·sak of a; B rows of ldb, C rows of ldc.
   * accumulate = 1 adds to C; upper = 1 computes only j ≥ i (needs M ≤ N). Deterministic summation order.
   */
  f32_gemm_strided(
    a: number, sai: number, sak: number, b: number, ldb: number, c: number, ldc: number,
    M: number, N: number, K: number, alpha: number, accumulate: number, upper: number,
  ): void;
  /** H[cols,cols] += XᵀX (upper triangle only) for X [T, cols]. */
  f32_gram_upper(x: number, h: number, T: number, cols: number): void;
  /** Rows [i0, i1) of f32_gram_upper (bit-identical elements): the unit of the row-sharded Gram. */
  f32_gram_upper_rows(x: number, h: number, T: number, cols: number, i0: number, i1: number): void;
  /** C[cols,cols] += Aᵀ·B for A, B [T, cols]. */
  f32_gram_cross(a: number, b: number, c: number, T: number, cols: number): void;
  /** Copy the upper triangle of H [n,n] onto the lower one. */
  f32_sym_mirror(h: number, n: number): void;
  /** out[j] += Σ_t X[t,j]² for X [T, cols]: the diagonal of f32_gram_upper, bit for bit (Wanda's column norms). */
  f32_col_sumsq(x: number, out: number, T: number, cols: number): void;

  // ---- assembly/f32-fista.ts -----------------------------------------------------------------------
  /** G[rows,cols] = W[rows,k] · H[k,cols]. */
  f32_fista_wh(w: number, h: number, g: number, rows: number, cols: number, k: number): void;
  /**
   * One FISTA step given G = Y·H: W⁺ = S_{η·λ_r}(Y − 2η(G − B)) (· mask unless mask = 0), per-row gradient
   * restart, Y = W⁺ + β_r(W⁺ − W). lam, t: [rows] f32.
   */
  f32_fista_step(
    y: number, g: number, b: number, wOld: number, wNew: number, lam: number, t: number, mask: number,
    rows: number, cols: number, eta: number,
  ): void;
  /** out[r] = Σ_j a[r,j]·b[r,j] (f32). */
  f32_row_dot(a: number, b: number, out: number, rows: number, cols: number): void;

  // ---- assembly/f32-nm.ts --------------------------------------------------------------------------
  /** mask[r,:] = 1 at the k largest |score[r,:]| (ties: lower index), else 0. */
  f32_topk_mask(score: number, mask: number, rows: number, cols: number, k: number): void;
  /** mask = 1 at the n largest |score| of each group of m consecutive entries (ties: lower index). */
  f32_nm_mask(score: number, mask: number, rows: number, cols: number, n: number, m: number): void;
  /** out[i] = w[i]·mask[i]. */
  f32_mask_mul(w: number, mask: number, out: number, n: number): void;
  /** out[r] (i32) = nonzeros of row r. */
  f32_row_nnz(w: number, out: number, rows: number, cols: number): void;
}

const NAMES = [
  "f32_gemm_strided", "f32_gram_upper", "f32_gram_upper_rows", "f32_gram_cross", "f32_sym_mirror", "f32_col_sumsq",
  "f32_fista_wh", "f32_fista_step", "f32_row_dot",
  "f32_topk_mask", "f32_nm_mask", "f32_mask_mul", "f32_row_nnz",
] as const satisfies readonly (keyof PruneKernelApi)[];

const cache = new WeakMap<object, PruneKernelApi>();

/** The pruning kernels of this instance, checked once to be present. */
export function pruneKernels(wasm: Wasm): PruneKernelApi {
  let k = cache.get(wasm.exports);
  if (!k) {
    for (const n of NAMES) {
      if (typeof wasm.exports[n] !== "function") throw new WasmError(`build/kernels.wasm lacks the pruning kernel ${n}; rebuild with \`npm run build\``);
    }
    k = wasm.exports as unknown as PruneKernelApi;
    cache.set(wasm.exports, k);
  }
  return k;
}
