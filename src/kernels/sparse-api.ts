/**
 * @file The raw exports of the sparse kernels in build/kernels.wasm (assembly/f32-spmm-nm.ts, f32-spmm-csr.ts),
 * in the style of ./api.ts: pointers are byte offsets into the shared memory, sizes are element counts,
 * kernels never allocate (scratch is passed in). The layouts are made by src/sparse/nm.ts (2:4, "4x":
 * four rows interleaved) and src/sparse/bcsr.ts (panel CSR). `sparseKernels(wasm)` gives them typed.
 */
import type { Wasm } from "../wasm/runtime.js";
import { WasmError } from "../errors.js";

export interface SparseKernelApi {
  // ---- assembly/f32-spmm-nm.ts ---------------------------------------------------------------------
  /** y[N] = W·x, W [N,K] 2:4 in the 4x layout: vals f32 [ceil(N/4)][K/4][2][4] (16-aligned), idx u8 [ceil(N/4)][K/4][2]. */
  f32_spmv_2of4_4x(vals: number, idx: number, x: number, y: number, N: number, K: number): void;
  /** Y[M,N] = X[M,K]·Wᵀ, W 2:4 in the 4x layout; `scratch`: f32_spmm_nt_scratch(M,N,K) bytes, 16-aligned. */
  f32_spmm_2of4_4x_nt(x: number, vals: number, idx: number, y: number, M: number, N: number, K: number, scratch: number): void;
  /** Scratch bytes of f32_spmm_2of4_4x_nt and f32_spmm_bcsr_nt. */
  f32_spmm_nt_scratch(M: number, N: number, K: number): number;

  // ---- assembly/f32-spmm-csr.ts --------------------------------------------------------------------
  /** y[N] = W·x, W [N,K] in panel CSR: rowptr u32 [ceil(K/256)·N + 1], cols u8 [nnz] (column − 256·panel), vals f32 [nnz]. */
  f32_spmv_bcsr(rowptr: number, cols: number, vals: number, x: number, y: number, N: number, K: number): void;
  /** Y[M,N] = X[M,K]·Wᵀ, W in panel CSR; `scratch`: f32_spmm_nt_scratch(M,N,K) bytes, 16-aligned. */
  f32_spmm_bcsr_nt(x: number, rowptr: number, cols: number, vals: number, y: number, M: number, N: number, K: number, scratch: number): void;
}

const NAMES = [
  "f32_spmv_2of4_4x", "f32_spmm_2of4_4x_nt", "f32_spmm_nt_scratch", "f32_spmv_bcsr", "f32_spmm_bcsr_nt",
] as const satisfies readonly (keyof SparseKernelApi)[];

const cache = new WeakMap<object, SparseKernelApi>();

/** The sparse kernels of this instance, checked once to be present. */
export function sparseKernels(wasm: Wasm): SparseKernelApi {
  let k = cache.get(wasm.exports);
  if (!k) {
    for (const n of NAMES) {
      if (typeof wasm.exports[n] !== "function") throw new WasmError(`build/kernels.wasm lacks the sparse kernel ${n}; rebuild with \`npm run build\``);
    }
    k = wasm.exports as unknown as SparseKernelApi;
    cache.set(wasm.exports, k);
  }
  return k;
}
