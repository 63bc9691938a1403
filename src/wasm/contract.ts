/**
 * @file The kernel contract: every export of build/kernels.wasm (and of its relaxed-SIMD twin) with its
 * signature, declared once. All pointers are byte offsets into the shared memory (src/wasm/runtime.ts), 16-byte
 * aligned at least where a kernel says so (the arena gives 64); all sizes are element counts (i32); matrices
 * are row-major f32 unless a layout is named; kernels never allocate: scratch is passed in by the host.
 *
 * `KERNEL_ARITY` restates each export's parameter count; the compiler checks it against `Kernels`
 * (`satisfies`), and `checkKernels` checks the instantiated module against it at start-up, so a missing,
 * renamed or re-typed export fails when the module is instantiated, naming it, not when a command first
 * calls it. `kernels(wasm)` (src/kernels/index.ts) is the one typed accessor.
 */
import { WasmError } from "../errors.js";

export interface Kernels {
  heapBase(): number;
  /** 1 for the relaxed-SIMD build, 0 for the baseline (the module's own word for which build it is). */
  kernelsRelaxed(): number;


  // ---- assembly/gemm.ts ----------------------------------------------------------------------------
  /** Y[M,N] = X[M,K] · W[N,K]ᵀ (+ Y when accumulate = 1). `pack` is scratch of f32_gemm_nt_scratch(M,N,K) bytes. */
  f32_gemm_nt(x: number, w: number, y: number, M: number, N: number, K: number, accumulate: number, pack: number): void;
  /** Bytes of scratch f32_gemm_nt needs for these sizes (0 if none). */
  f32_gemm_nt_scratch(M: number, N: number, K: number): number;

  /** Bytes of `pack` scratch the *_gemm_p8_nt kernels need for M rows of X of K columns. */
  gemm_p8_nt_scratch(M: number, K: number): number;
  /** Y[M,N] = X[M,K] · Wᵀ, W [N,K] packed as p8 panels (f32 / bf16 / f16 values; assembly/gemv.ts); `pack` 16-aligned. */
  f32_gemm_p8_nt(x: number, w: number, y: number, M: number, N: number, K: number, pack: number): void;
  bf16_gemm_p8_nt(x: number, w: number, y: number, M: number, N: number, K: number, pack: number): void;
  f16_gemm_p8_nt(x: number, w: number, y: number, M: number, N: number, K: number, pack: number): void;

  // ---- assembly/gemv.ts ----------------------------------------------------------------------------
  /** y[N] = W[N,K] · x[K] (+ y when accumulate = 1), W row-major f32. */
  f32_gemv(w: number, x: number, y: number, N: number, K: number, accumulate: number): void;
  /** y[N] = W[N,K] · x[K], W packed as p8 panels (16-aligned) of f32 / bf16 / f16 values. */
  f32_gemv_p8(w: number, x: number, y: number, N: number, K: number): void;
  bf16_gemv_p8(w: number, x: number, y: number, N: number, K: number): void;
  f16_gemv_p8(w: number, x: number, y: number, N: number, K: number): void;

  // ---- assembly/stream.ts --------------------------------------------------------------------------
  /** Σ of the f32 values in [p, p + bytes) (the streaming-read ceiling of bench kernels). */
  f32_stream_sum(p: number, bytes: number): number;
  /** `steps` rounds of 10 f32x4 multiply-adds on registers (80 flops each; fused 1: madd, 0: mul then add) */
  f32_compute_peak(steps: number, x: number, fused: number): number;

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

  // ---- assembly/qgemm.ts ---------------------------------------------------------------------------
  /** Bytes of scratch (int16 or int8 activations + block scales) the q*_gemm_nt kernels need: T positions, K inputs, block B. */
  q_gemm_nt_scratch(T: number, K: number, B: number): number;
  /**
   * x f32 [T,K] → xq i16 [T][K padded to B] (16-aligned) + xs f32 [T][Kp/B][2] (sx, sx·Σxq); order 0: the int8
   * kernel's lane order, 1: the int4 kernel's, 2: the inputs' own (the 2:4 int4 kernel).
   */
  i16_quantize_blocks(x: number, T: number, K: number, B: number, order: number, xq: number, xs: number): void;
  /**
   * y[T,N] = x·Wᵀ, W int8 codes (u8 = q+128) in 4-row panels, scales sc f32 [4·ceil(N/4)][ng], zc the same
   * shape = s·(128+z) with zero points (0: symmetric); xq/xs of block B.
   */
  qu8_gemm_nt(xq: number, xs: number, w: number, sc: number, zc: number, y: number, T: number, N: number, K: number, ng: number, B: number): void;
  /** The same for int4 codes (u4 = q+8, two per byte, low nibble first); zc = s·(8+z). */
  qu4_gemm_nt(xq: number, xs: number, w: number, sc: number, zc: number, y: number, T: number, N: number, K: number, ng: number, B: number): void;
  /** x f32 [T,K] → int8 values of `bits`-wide codes' kernel in the build's layout, in i16_quantize_blocks' scratch (xq, xs). */
  i8_quantize_blocks(x: number, T: number, K: number, B: number, bits: number, xq: number, xs: number): void;
  /** qu8_gemm_nt's int8 panels against int8 activations (xq/xs of i8_quantize_blocks for 8-bit codes, block B): W8A8. */
  qu8a8_gemm_nt(xq: number, xs: number, w: number, sc: number, zc: number, y: number, T: number, N: number, K: number, ng: number, B: number): void;
  /** qu4_gemm_nt's int4 panels against int8 activations (xq/xs of i8_quantize_blocks, block B): W4A8. */
  qu4a8_gemm_nt(xq: number, xs: number, w: number, sc: number, zc: number, y: number, T: number, N: number, K: number, ng: number, B: number): void;
  /**
   * y[T,N] = x·Wᵀ, W 2:4-sparse int4: its kept codes (u16 [ceil(N/4)][Kp/16][8]) and their positions (u8
   * [ceil(N/4)][Kp/4][2]), scales sc f32 [ceil(N/4)][ng][4], zero points zp i16 [ceil(N/4)][ng][8] (0: symmetric);
   * xq/xs of block B in order 2.
   */
  qu4_gemm_2of4_nt(xq: number, xs: number, codes: number, idx: number, sc: number, zp: number, y: number, T: number, N: number, K: number, ng: number, B: number): void;
  /**
   * The codes and positions of qu4_gemm_2of4_nt's layout (whole: NB·Kp and NB·Kp/2 bytes) from pack-quantized int4
   * words [N][ceil(K/8)] and zero points zp i8 [N][ng] (0: symmetric), in groups of `group` inputs; K padded to Kp.
   * −1, or r·(Kp/4) + g of the first group (row r, inputs 4g..) with more than 2 nonzero weights.
   */
  qu4_place_2of4(packed: number, N: number, K: number, zp: number, ng: number, group: number, Kp: number, codes: number, idx: number): number;
  qu4_place_2of4_kept(kept: number, mask: number, N: number, K: number, Kp: number, codes: number, idx: number): number;

  // ---- assembly/spmm-nm.ts ---------------------------------------------------------------------
  /** y[N] = W·x, W [N,K] 2:4 in the 4x layout: vals f32 [ceil(N/4)][K/4][2][4] (16-aligned), idx u8 [ceil(N/4)][K/4][2]. */
  f32_spmv_2of4_4x(vals: number, idx: number, x: number, y: number, N: number, K: number): void;
  /** Y[M,N] = X[M,K]·Wᵀ, W 2:4 in the 4x layout; `scratch`: f32_spmm_nt_scratch(M,N,K) bytes, 16-aligned. */
  f32_spmm_2of4_4x_nt(x: number, vals: number, idx: number, y: number, M: number, N: number, K: number, scratch: number): void;
  /** The same with half-precision values (u16 [ceil(N/4)][K/4][4][2]: bf16 or f16). */
  bf16_spmv_2of4_4x(vals: number, idx: number, x: number, y: number, N: number, K: number): void;
  f16_spmv_2of4_4x(vals: number, idx: number, x: number, y: number, N: number, K: number): void;
  bf16_spmm_2of4_4x_nt(x: number, vals: number, idx: number, y: number, M: number, N: number, K: number, scratch: number): void;
  f16_spmm_2of4_4x_nt(x: number, vals: number, idx: number, y: number, M: number, N: number, K: number, scratch: number): void;
  /** Scratch bytes of f32_spmm_2of4_4x_nt and f32_spmm_bcsr_nt. */
  f32_spmm_nt_scratch(M: number, N: number, K: number): number;

  // ---- assembly/spmm-csr.ts --------------------------------------------------------------------
  /** y[N] = W·x, W [N,K] in panel CSR: rowptr u32 [ceil(K/256)·N + 1], cols u8 [nnz] (column − 256·panel), vals f32 [nnz]. */
  f32_spmv_bcsr(rowptr: number, cols: number, vals: number, x: number, y: number, N: number, K: number): void;
  /** Y[M,N] = X[M,K]·Wᵀ, W in panel CSR; `scratch`: f32_spmm_nt_scratch(M,N,K) bytes, 16-aligned. */
  f32_spmm_bcsr_nt(x: number, rowptr: number, cols: number, vals: number, y: number, M: number, N: number, K: number, scratch: number): void;
  /** The same with half-precision values (u16 [nnz]: bf16 or f16). */
  bf16_spmv_bcsr(rowptr: number, cols: number, vals: number, x: number, y: number, N: number, K: number): void;
  f16_spmv_bcsr(rowptr: number, cols: number, vals: number, x: number, y: number, N: number, K: number): void;
  bf16_spmm_bcsr_nt(x: number, rowptr: number, cols: number, vals: number, y: number, M: number, N: number, K: number, scratch: number): void;
  f16_spmm_bcsr_nt(x: number, rowptr: number, cols: number, vals: number, y: number, M: number, N: number, K: number, scratch: number): void;

  // ---- assembly/gemm.ts (f32_gemm_strided), f32-gram.ts ------------------------------------------
  /**
   * C[M,N] (+)= alpha · op(A)·B with op(A)(i,k) at float offset i·sai + k·sak of a; B rows of ldb, C rows of ldc.
   * accumulate = 1 adds to C; upper = 1 computes only j ≥ i (needs M ≤ N). Deterministic summation order.
   * pack: f32_gemm_strided_scratch() bytes (16-aligned; B packed into panels, the same bits) or 0.
   */
  f32_gemm_strided(
    a: number, sai: number, sak: number, b: number, ldb: number, c: number, ldc: number,
    M: number, N: number, K: number, alpha: number, accumulate: number, upper: number, pack: number,
  ): void;
  f32_gemm_strided_scratch(): number;
  /** H[cols,cols] += XᵀX (upper triangle only) for X [T, cols]. */
  f32_gram_upper(x: number, h: number, T: number, cols: number): void;
  /** Rows [i0, i1) of f32_gram_upper (bit-identical elements): the unit of the row-sharded Gram. */
  f32_gram_upper_rows(x: number, h: number, T: number, cols: number, i0: number, i1: number, pack: number): void;
  /** C[cols,cols] += Aᵀ·B for A, B [T, cols]. */
  f32_gram_cross(a: number, b: number, c: number, T: number, cols: number): void;
  /** Copy the upper triangle of H [n,n] onto the lower one. */
  f32_sym_mirror(h: number, n: number): void;
  /** out[j] += Σ_t X[t,j]² for X [T, cols]: the diagonal of f32_gram_upper, bit for bit (Wanda's column norms). */
  f32_col_sumsq(x: number, out: number, T: number, cols: number): void;

  /** G[rows,cols] = W[rows,k] · H[k,cols] (FISTA's W·H; assembly/gemm.ts). */
  f32_fista_wh(w: number, h: number, g: number, rows: number, cols: number, k: number): void;

  // ---- assembly/f32-fista.ts -----------------------------------------------------------------------
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

  // ---- assembly/f32-obs.ts -------------------------------------------------------------------------
  f32_obs_scores(w: number, hinv: number, cols: number, s: number, r0: number, r1: number, i1: number, count: number): void;
  /** qs = 0: pruning only; else quantizing kept weights (GPTQ, joint SparseGPT): see assembly/f32-obs.ts */
  f32_obs_block(w: number, hinv: number, cols: number, err: number, s: number, mask: number, ld: number, r0: number, r1: number, i1: number, count: number, n: number, m: number,
    qs: number, qz: number, gidx: number, ng: number, group: number, qmin: number, qmax: number): void;

  // ---- assembly/f32-quant.ts -----------------------------------------------------------------------
  /** scale (and zero point, qz ≠ 0) of group g of every row from w[r, c0 : c0+count) into qs/qz[r·ng + g] */
  f32_quant_params(w: number, cols: number, rows: number, c0: number, count: number, qs: number, qz: number, ng: number, g: number, qmin: number, qmax: number): void;
  /** round-to-nearest in place onto each weight's group grid (group j / group) */
  f32_quant_rows(w: number, cols: number, rows: number, qs: number, qz: number, ng: number, group: number, qmin: number, qmax: number): void;

  // ---- assembly/f32-cholesky.ts: the diagonal blocks of src/prune/linalg.ts's blocked algorithms -------
  /** In place: A's leading n×n block (row stride lda) becomes U, A = UᵀU (upper); 0 when not positive definite. */
  f32_potrf_upper(a: number, lda: number, n: number): number;
  /** In place: U's leading n×n block (upper, row stride lda) becomes U⁻¹ (upper). */
  f32_trtri_upper(a: number, lda: number, n: number): void;

  // ---- assembly/gemm.ts: the backward GEMMs ------------------------------------------------------
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

/** Parameter count of every export (the compiler checks each against `Kernels`; checkKernels the module). */
export const KERNEL_ARITY = Object.freeze({
  heapBase: 0, kernelsRelaxed: 0, f32_gemm_nt_scratch: 3, f32_gemm_nt: 8, gemm_p8_nt_scratch: 2, f32_gemm_p8_nt: 7, bf16_gemm_p8_nt: 7,
  f16_gemm_p8_nt: 7, f32_gemv: 6, f32_gemv_p8: 5, bf16_gemv_p8: 5, f16_gemv_p8: 5, f32_stream_sum: 2, f32_compute_peak: 3, f32_rmsnorm: 6,
  f32_softmax: 2, f32_silu_mul: 4, f32_add: 4, f32_add_bias_rows: 4, f32_scale: 3, f32_rope_interleaved: 5,
  f32_rope_half: 5, f32_attention: 10, f32_gemm_strided: 14, f32_gemm_strided_scratch: 0, f32_gram_upper: 4, f32_gram_upper_rows: 7,
  f32_gram_cross: 5, f32_sym_mirror: 2, f32_col_sumsq: 4, f32_potrf_upper: 3,
  f32_trtri_upper: 3,
  f32_obs_scores: 8, f32_obs_block: 20, f32_quant_params: 11, f32_quant_rows: 9, f32_fista_wh: 6, f32_fista_step: 11, f32_row_dot: 5, f32_topk_mask: 5,
  f32_nm_mask: 6, f32_mask_mul: 4, f32_row_nnz: 4, f32_spmm_nt_scratch: 3, f32_spmv_2of4_4x: 6, bf16_spmv_2of4_4x: 6,
  f16_spmv_2of4_4x: 6, f32_spmm_2of4_4x_nt: 8, bf16_spmm_2of4_4x_nt: 8, f16_spmm_2of4_4x_nt: 8, f32_spmv_bcsr: 7,
  bf16_spmv_bcsr: 7, f16_spmv_bcsr: 7, f32_spmm_bcsr_nt: 9, bf16_spmm_bcsr_nt: 9, f16_spmm_bcsr_nt: 9,
  f32_gemm_nn: 7, f32_gemm_tn: 7, f32_rmsnorm_backward: 9, f32_silu_mul_backward: 6,
  f32_rope_interleaved_backward: 5, f32_rope_half_backward: 5, f32_embedding_backward: 6, f32_group_sum: 5,
  f32_group_expand_add: 5, f32_attention_causal: 12, f32_attention_backward: 15, f32_cross_entropy_backward: 7,
  f32_kl_backward: 8, q_gemm_nt_scratch: 3, i16_quantize_blocks: 7, qu8_gemm_nt: 11, qu4_gemm_nt: 11, i8_quantize_blocks: 7, qu8a8_gemm_nt: 11, qu4a8_gemm_nt: 11, qu4_gemm_2of4_nt: 12, qu4_place_2of4: 9, qu4_place_2of4_kept: 7,
} as const satisfies { readonly [K in keyof Kernels]: Parameters<Kernels[K]>["length"] });

/** Export names that are kernels by the house naming (dtype prefix), or the contract's other functions. */
const KERNEL_NAME = /^(f32|bf16|f16|i16|qu8|qu4)_|^q?gemm_|^q_|^heapBase$|^kernelsRelaxed$/;

/**
 * The exports of an instance as `Kernels`, after checking them against the contract: every declared export is
 * a function of its declared parameter count, and every kernel-named export is declared. `file` names the
 * module in the error.
 */
export function checkKernels(exports: Record<string, unknown>, file: string): Kernels {
  const problems: string[] = [];
  for (const [name, arity] of Object.entries(KERNEL_ARITY)) {
    const f = exports[name];
    if (typeof f !== "function") problems.push(`${name} is missing`);
    else if (f.length !== arity) problems.push(`${name} takes ${f.length} parameters, the contract says ${arity}`);
  }
  for (const [name, f] of Object.entries(exports)) {
    if (typeof f === "function" && KERNEL_NAME.test(name) && !(name in KERNEL_ARITY)) problems.push(`${name} is exported but not in the contract (src/wasm/contract.ts)`);
  }
  if (problems.length) throw new WasmError(`${file} does not match the kernel contract: ${problems.join("; ")}; rebuild with \`npm run build\``);
  return exports as unknown as Kernels;
}
