/**
 * @file Typed access to the kernels of build/kernels.wasm (contract: src/wasm/contract.ts) plus small host helpers that
 * take their scratch from the arena inside a mark/release, so callers never manage kernel scratch.
 */
import type { Wasm } from "../wasm/runtime.js";
import type { Kernels } from "../wasm/contract.js";

export type { Kernels } from "../wasm/contract.js";

/** The instance's kernels, typed by the contract (src/wasm/contract.ts; checked when the module was instantiated). */
export function kernels(wasm: Wasm): Kernels {
  return wasm.exports;
}

/** Y[M,N] = X[M,K]·W[N,K]ᵀ (+ Y): f32_gemm_nt with its `pack` scratch taken from (and given back to) the arena. */
export function gemmNT(wasm: Wasm, x: number, w: number, y: number, M: number, N: number, K: number, accumulate = false): void {
  const k = kernels(wasm);
  const mark = wasm.arena.mark();
  try {
    const pack = wasm.arena.allocBytes(k.f32_gemm_nt_scratch(M, N, K));
    k.f32_gemm_nt(x, w, y, M, N, K, accumulate ? 1 : 0, pack);
  } finally {
    wasm.arena.release(mark);
  }
}

/** y[N] = W[N,K]·x (+ y). */
export function gemv(wasm: Wasm, w: number, x: number, y: number, N: number, K: number, accumulate = false): void {
  kernels(wasm).f32_gemv(w, x, y, N, K, accumulate ? 1 : 0);
}

/**
 * Attention of one query position against T cached positions (see api.ts for the layout); the T-float
 * `scores` scratch comes from the arena.
 */
export function attention(
  wasm: Wasm, q: number, k: number, v: number, out: number,
  nHeads: number, nKvHeads: number, headDim: number, T: number, kvStride: number,
): void {
  const mark = wasm.arena.mark();
  try {
    const scores = wasm.arena.alloc(Math.max(T, 1));
    kernels(wasm).f32_attention(q, k, v, out, scores, nHeads, nKvHeads, headDim, T, kvStride);
  } finally {
    wasm.arena.release(mark);
  }
}
