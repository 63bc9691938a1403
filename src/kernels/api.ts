/**
 * @file The raw exports of build/kernels.wasm: the contract between the AssemblyScript kernels (assembly/)
 * and the host. All pointers are byte offsets into the shared memory (see src/wasm/runtime.ts), 16-byte
 * aligned at least (the arena gives 64); all sizes are element counts (i32); matrices are row-major f32.
 * Kernels never allocate: scratch is passed in by the host.
 */
export interface KernelApi {
  heapBase(): number;

  // ---- assembly/f32-gemm.ts ------------------------------------------------------------------------
  /** Y[M,N] = X[M,K] · W[N,K]ᵀ (+ Y when accumulate = 1). `pack` is scratch of f32_gemm_nt_scratch(M,N,K) bytes. */
  f32_gemm_nt(x: number, w: number, y: number, M: number, N: number, K: number, accumulate: number, pack: number): void;
  /** Bytes of scratch f32_gemm_nt needs for these sizes (0 if none). */
  f32_gemm_nt_scratch(M: number, N: number, K: number): number;

  // ---- assembly/f32-gemv.ts ------------------------------------------------------------------------
  /** y[N] = W[N,K] · x[K] (+ y when accumulate = 1). */
  f32_gemv(w: number, x: number, y: number, N: number, K: number, accumulate: number): void;

  // ---- assembly/f32-elementwise.ts -----------------------------------------------------------------
  /** out[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) * g[:], rows of n; out may alias x. */
  f32_rmsnorm(x: number, g: number, out: number, rows: number, n: number, eps: number): void;
  /** x[0..n) = softmax(x), in place, max-subtracted. */
  f32_softmax(x: number, n: number): void;
  /** out[i] = silu(gate[i]) * up[i]; out may alias gate or up. */
  f32_silu_mul(gate: number, up: number, out: number, n: number): void;
  /** out[i] = a[i] + b[i]; out may alias a or b. */
  f32_add(a: number, b: number, out: number, n: number): void;
  /** y[r,:] += b[:] for `rows` rows of n. */
  f32_add_bias_rows(y: number, b: number, rows: number, n: number): void;
  /** x[i] *= s. */
  f32_scale(x: number, s: number, n: number): void;
  /** RoPE, llama2.c/Meta layout: pairs (2i, 2i+1) of each head rotated by (cos[i], sin[i]), i < headDim/2. */
  f32_rope_interleaved(x: number, cos: number, sin: number, nHeads: number, headDim: number): void;
  /** RoPE, HF rotate_half layout: (x[i], x[i+headDim/2]) of each head rotated by (cos[i], sin[i]). */
  f32_rope_half(x: number, cos: number, sin: number, nHeads: number, headDim: number): void;

  // ---- assembly/f32-attention.ts -------------------------------------------------------------------
  /**
   * One query position against T cached positions (causal masking is the caller's choice of T).
   * q: [nHeads*headDim]; key/value row t of kv head h at k + 4*(t*kvStride + h*headDim); out: [nHeads*headDim];
   * scores: scratch of T floats. Query head i uses kv head i / (nHeads/nKvHeads). Scale 1/sqrt(headDim).
   */
  f32_attention(
    q: number, k: number, v: number, out: number, scores: number,
    nHeads: number, nKvHeads: number, headDim: number, T: number, kvStride: number,
  ): void;
}
