/**
 * @file The raw exports of the backward kernels (assembly/f32-*-backward.ts) in build/kernels.wasm. Same
 * contract as src/kernels/api.ts: byte-offset pointers into the shared memory, element counts, row-major f32;
 * `accumulate` = 1 adds into the output. Every gradient sum runs in a fixed order (deterministic).
 */
import type { Wasm } from "../wasm/runtime.js";
import type { KernelApi } from "../kernels/api.js";

export interface BackwardKernelApi extends KernelApi {
  // ---- assembly/f32-gemm-backward.ts ---------------------------------------------------------------
  /** C[M,N] (=|+=) A[M,K] · B[K,N]  — dX = dY · W */
  f32_gemm_nn(a: number, b: number, c: number, M: number, N: number, K: number, accumulate: number): void;
  /** C[M,N] (=|+=) A[K,M]ᵀ · B[K,N] — dW += dYᵀ · X */
  f32_gemm_tn(a: number, b: number, c: number, M: number, N: number, K: number, accumulate: number): void;

  // ---- assembly/f32-elementwise-backward.ts --------------------------------------------------------
  /** dx (+)= ∂/∂x of rmsnorm rows; dg += Σ_rows dy ⊙ x·r */
  f32_rmsnorm_backward(x: number, g: number, dy: number, dx: number, dg: number, rows: number, n: number, eps: number, accumulate: number): void;
  /** dgate, dup of h = silu(gate)·up */
  f32_silu_mul_backward(gate: number, up: number, dh: number, dgate: number, dup: number, n: number): void;
  /** transpose rotation, in place */
  f32_rope_interleaved_backward(dx: number, cos: number, sin: number, nHeads: number, headDim: number): void;
  f32_rope_half_backward(dx: number, cos: number, sin: number, nHeads: number, headDim: number): void;
  /** dE[tokens[t]] += dx[t] (tokens: i32) */
  f32_embedding_backward(tokens: number, dx: number, dE: number, T: number, dim: number, vocab: number): void;
  /** s[t, q] = Σ of the q-th group of k inputs of x[t] (SLoRB projection) */
  f32_group_sum(x: number, s: number, rows: number, n: number, k: number): void;
  /** dx[t, j] += ds[t, j / k] */
  f32_group_expand_add(ds: number, dx: number, rows: number, n: number, k: number): void;

  // ---- assembly/f32-attention-backward.ts ----------------------------------------------------------
  /** causal attention over positions 0..T-1 for training; lse [nHeads][T] kept for the backward; scratch T+3 floats */
  f32_attention_causal(
    q: number, k: number, v: number, out: number, lse: number, scratch: number,
    nHeads: number, nKvHeads: number, headDim: number, T: number, qStride: number, kvStride: number,
  ): void;
  /** its backward; dq written, dk/dv added to; scratch 2(T+3) floats */
  f32_attention_backward(
    q: number, k: number, v: number, lse: number, dout: number, dq: number, dk: number, dv: number, scratch: number,
    nHeads: number, nKvHeads: number, headDim: number, T: number, qStride: number, kvStride: number,
  ): void;

  // ---- assembly/f32-loss-backward.ts ---------------------------------------------------------------
  /** Σ CE over rows (targets i32, < 0 skips); dz (+)= scale·(softmax − onehot) */
  f32_cross_entropy_backward(z: number, targets: number, dz: number, rows: number, V: number, scale: number, accumulate: number): number;
  /** τ²·Σ KL(softmax(zt/τ) ‖ softmax(z/τ)); dz (+)= scale·τ·(p − p̂) */
  f32_kl_backward(z: number, zt: number, dz: number, rows: number, V: number, tau: number, scale: number, accumulate: number): number;
}

export function backwardKernels(wasm: Wasm): BackwardKernelApi {
  return wasm.exports as unknown as BackwardKernelApi;
}
