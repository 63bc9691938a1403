/**
 * @file Matrix products and Gram sums of one operator split into row blocks (or fixed chunks) over an
 * executor's slots (src/exec/executor.ts): the host side, the task types and their handlers (run on a worker
 * thread or inline, the same code). Every task touches only its rows [r0, r1) of its outputs (its rows of H for
 * the Gram), so tasks of one batch never write the same memory, and the split never changes a result (each row,
 * or each Gram element, is the same sum wherever it is computed), so the thread count is free.
 */
import type { Executor } from "../exec/executor.js";
import type { Wasm } from "../wasm/runtime.js";
import { kernels } from "./index.js";

/** One f32_gemm_strided call, pointers already offset: C (+)= α·op(A)·B; upper = 1 computes only j ≥ i. */
export interface StridedCall {
  a: number; sai: number; sak: number; b: number; ldb: number; c: number; ldc: number;
  M: number; N: number; K: number; alpha: number; accumulate: number; upper: number;
}

export type ProductTask =
  /** Y = X·Wᵀ on a row block of X (f32_gemm_nt with this slot's pack scratch) */
  | { op: "gemmNt"; x: number; w: number; y: number; M: number; N: number; K: number; pack: number }
  /** rows [i0, i1) of the Gram sums over the batches, in batch order */
  | { op: "gram"; batches: Array<{ xp: number; xd: number; T: number }>; H: number; C: number; Hd: number; cols: number; i0: number; i1: number; pack: number }
  /** independent f32_gemm_strided calls, in order (a row block of one product, or a run of the fixed chunks of one
   * step of a blocked algorithm), with this slot's pack scratch */
  | { op: "gemms"; calls: StridedCall[]; pack: number }
  /** Σ of the f32 values in [p, p + bytes): a block of the streaming-read ceiling (bench kernels, two threads) */
  | { op: "streamSum"; p: number; bytes: number }
  /** `steps` rounds of register multiply-adds: one slot's share of the compute ceiling (bench kernels) */
  | { op: "computePeak"; steps: number; fused: number };


/** The handlers of the product tasks. */
export const PRODUCT_HANDLERS = {
  gemmNt(wasm: Wasm, t: Extract<ProductTask, { op: "gemmNt" }>): number {
    kernels(wasm).f32_gemm_nt(t.x, t.w, t.y, t.M, t.N, t.K, 0, t.pack);
    return 0;
  },
  gram(wasm: Wasm, t: Extract<ProductTask, { op: "gram" }>): number {
    const k = kernels(wasm);
    for (const b of t.batches) {
      k.f32_gram_upper_rows(b.xp, t.H, b.T, t.cols, t.i0, t.i1, t.pack);
      if (t.C) {
        k.f32_gemm_strided(b.xd + 4 * t.i0, 1, t.cols, b.xp, t.cols, t.C + 4 * t.i0 * t.cols, t.cols, t.i1 - t.i0, t.cols, b.T, 1, 1, 0, t.pack);
        k.f32_gram_upper_rows(b.xd, t.Hd, b.T, t.cols, t.i0, t.i1, t.pack);
      }
    }
    return 0;
  },
  gemms(wasm: Wasm, t: Extract<ProductTask, { op: "gemms" }>): number {
    const k = kernels(wasm);
    for (const c of t.calls) k.f32_gemm_strided(c.a, c.sai, c.sak, c.b, c.ldb, c.c, c.ldc, c.M, c.N, c.K, c.alpha, c.accumulate, c.upper, t.pack);
    return 0;
  },
  streamSum(wasm: Wasm, t: Extract<ProductTask, { op: "streamSum" }>): number {
    return kernels(wasm).f32_stream_sum(t.p, t.bytes);
  },
  computePeak(wasm: Wasm, t: Extract<ProductTask, { op: "computePeak" }>): number {
    return kernels(wasm).f32_compute_peak(t.steps, 1e-3, t.fused);
  },
} as const;

/** Σ of the f32 values in [p, p + bytes) read by every slot of `exec` at once, a block each (the read ceiling). */
export async function streamSum(exec: Executor, p: number, bytes: number): Promise<number> {
  const blocks = exec.split(bytes / 64, Number.MAX_SAFE_INTEGER, 1);
  const parts = await exec.each<number>(blocks, ([b0, b1]) => ({ op: "streamSum", p: p + 64 * b0, bytes: 64 * (b1 - b0) }) satisfies ProductTask, "stream read");
  return parts.reduce((s, v) => s + v, 0);
}

/** `steps` rounds of register multiply-adds on every slot of `exec` at once (the compute ceiling); the flops done. */
export async function computePeak(exec: Executor, steps: number, fused: boolean): Promise<number> {
  const slots = Array.from({ length: exec.slots }, (_, s): [number, number] => [s, s + 1]);
  await exec.each<number>(slots, () => ({ op: "computePeak", steps, fused: fused ? 1 : 0 }) satisfies ProductTask, "compute ceiling");
  return 80 * steps * exec.slots;
}

/** C[rows, cols] = A[rows, k] · B[k, cols] (plain product, any B). */
export async function matmul(exec: Executor, A: number, B: number, C: number, rows: number, cols: number, k: number, what = "matmul"): Promise<void> {
  await gemmStrided(exec, A, k, B, cols, C, cols, rows, cols, k, 1, 0, what);
}

/** C[rows, :n] (+)= alpha · A[rows, :k] · B[:k, :n] with leading dimensions (SparseGPT's lazy batch update). */
export async function gemmStrided(
  exec: Executor, A: number, lda: number, B: number, ldb: number, C: number, ldc: number,
  rows: number, n: number, k: number, alpha: number, accumulate: number, what = "gemm",
): Promise<void> {
  await exec.each(exec.split(rows, rows * n * k), ([r0, r1], s) => ({
    op: "gemms", pack: exec.packs[s]!,
    calls: [{ a: A + 4 * r0 * lda, sai: lda, sak: 1, b: B, ldb, c: C + 4 * r0 * ldc, ldc, M: r1 - r0, N: n, K: k, alpha, accumulate, upper: 0 }],
  }) satisfies ProductTask, what);
}

/** G[rows, cols] = W · Hᵀ (= W·H for symmetric H) by f32_gemm_nt, each block with its slot's pack scratch. */
export async function matmulNt(exec: Executor, W: number, H: number, G: number, rows: number, cols: number, what = "matmul"): Promise<void> {
  await exec.each(exec.split(rows, rows * cols * cols), ([r0, r1], s) => ({
    op: "gemmNt", x: W + 4 * r0 * cols, w: H, y: G + 4 * r0 * cols, M: r1 - r0, N: cols, K: cols, pack: exec.packs[s]!,
  }) satisfies ProductTask, what);
}

/**
 * The Gram sums over `batches` in order, split over the rows of H (balanced by the triangle's row lengths):
 * H += X_pᵀX_p (upper triangle); with C: C += X_dᵀX_p and H_d += X_dᵀX_d (upper triangle).
 */
export async function gramBatches(
  exec: Executor, batches: Array<{ xp: number; xd: number; T: number }>, H: number, C: number, Hd: number, cols: number, what = "Gram",
): Promise<void> {
  const tokens = batches.reduce((s, b) => s + b.T, 0);
  // row i of the upper triangle has cols − i elements (the cross term a full row: + cols)
  const blocks = exec.split(cols, tokens * cols * cols, 4, (i) => (C ? 2 * (cols - i) + cols : cols - i));
  await exec.each(blocks, ([i0, i1], s) => ({ op: "gram", batches, H, C, Hd, cols, i0, i1, pack: exec.packs[s]! }) satisfies ProductTask, what);
}

/**
 * Independent f32_gemm_strided calls (no call reads what another writes) over the slots: contiguous runs of
 * calls of about equal work, each run one task. A caller that cuts its work into chunks of a fixed size gets the
 * same bytes for any thread count (each chunk is the same call wherever it runs).
 */
export async function gemmCalls(exec: Executor, calls: StridedCall[], what = "gemm"): Promise<void> {
  const work = (c: StridedCall) => c.M * (c.upper ? c.N - c.M / 2 : c.N) * c.K;
  const total = calls.reduce((s, c) => s + work(c), 0);
  const blocks = exec.split(calls.length, total, 1, (i) => work(calls[i]!));
  await exec.each(blocks, ([c0, c1], s) => ({ op: "gemms", calls: calls.slice(c0, c1), pack: exec.packs[s]! }) satisfies ProductTask, what);
}

/** Y[M, N] = X[M, K] · W[N, K]ᵀ, the rows of X split over the slots (each slot its pack scratch). */
export async function gemmNT(exec: Executor, x: number, w: number, y: number, M: number, N: number, K: number, what = "gemm"): Promise<void> {
  await exec.each(exec.split(M, M * N * K), ([r0, r1], s) => ({
    op: "gemmNt", x: x + 4 * r0 * K, w, y: y + 4 * r0 * N, M: r1 - r0, N, K, pack: exec.packs[s]!,
  }) satisfies ProductTask, what);
}
