/**
 * @file The host side of the row-block tasks (./rows.worker.ts): products, Gram sums and FISTA runs of one
 * operator split into contiguous row blocks over `wasm.parallel`'s slots, or run in this thread when there is
 * no pool or the work is too small to pay for a task. The split never changes a result (each row, or each
 * Gram element, is the same sum wherever it is computed), so the thread count and the size cut-off are free.
 */
import type { Wasm } from "../wasm/runtime.js";
import { pruneKernels } from "../kernels/prune-api.js";
import { shards } from "./pool.js";
import type { FistaRowsTask, ObsRowsTask, RowsTask } from "./rows.worker.js";
import { fistaRowsLocal, obsRowsLocal } from "./rows-local.js";

/** Below this many multiply-adds a task costs more than it saves (~50 µs of messaging against ~2 GFLOP/s). */
const MIN_WORK = 1 << 18;

function pool(wasm: Wasm, work: number) {
  const p = wasm.parallel;
  return p && work >= MIN_WORK ? p : undefined;
}

/** C[rows, cols] = A[rows, k] · B[k, cols] (f32_fista_wh: plain product, any B). */
export async function matmul(wasm: Wasm, A: number, B: number, C: number, rows: number, cols: number, k: number, what = "matmul"): Promise<void> {
  const p = pool(wasm, rows * cols * k);
  if (!p) return pruneKernels(wasm).f32_fista_wh(A, B, C, rows, cols, k);
  const blocks = shards(rows, p.threads);
  await p.all<number>("rows", (s) => {
    const b = blocks[s];
    if (!b) return undefined;
    const [r0, r1] = b;
    return {
      op: "strided", a: A + 4 * r0 * k, sai: k, sak: 1, b: B, ldb: cols, c: C + 4 * r0 * cols, ldc: cols,
      M: r1 - r0, N: cols, K: k, alpha: 1, accumulate: 0,
    } satisfies RowsTask;
  }, what);
}

/** C[rows, :n] += alpha · A[rows, :k] · B[:k, :n] with leading dimensions (SparseGPT's lazy batch update). */
export async function gemmStrided(
  wasm: Wasm, A: number, lda: number, B: number, ldb: number, C: number, ldc: number,
  rows: number, n: number, k: number, alpha: number, accumulate: number, what = "gemm",
): Promise<void> {
  const p = pool(wasm, rows * n * k);
  if (!p) return pruneKernels(wasm).f32_gemm_strided(A, lda, 1, B, ldb, C, ldc, rows, n, k, alpha, accumulate, 0);
  const blocks = shards(rows, p.threads);
  await p.all<number>("rows", (s) => {
    const b = blocks[s];
    if (!b) return undefined;
    const [r0, r1] = b;
    return { op: "strided", a: A + 4 * r0 * lda, sai: lda, sak: 1, b: B, ldb, c: C + 4 * r0 * ldc, ldc, M: r1 - r0, N: n, K: k, alpha, accumulate } satisfies RowsTask;
  }, what);
}

/**
 * G[rows, cols] = W · Hᵀ (= W·H for symmetric H) by f32_gemm_nt; `pack` is this thread's scratch for the
 * local path (pool tasks use their slot's).
 */
export async function matmulNt(wasm: Wasm, W: number, H: number, G: number, rows: number, cols: number, pack: number, what = "matmul"): Promise<void> {
  const gemm = wasm.exports.f32_gemm_nt as (...a: number[]) => void;
  const p = pool(wasm, rows * cols * cols);
  if (!p) return gemm(W, H, G, rows, cols, cols, 0, pack);
  const blocks = shards(rows, p.threads);
  await p.all<number>("rows", (s) => {
    const b = blocks[s];
    if (!b) return undefined;
    const [r0, r1] = b;
    return { op: "gemmNt", x: W + 4 * r0 * cols, w: H, y: G + 4 * r0 * cols, M: r1 - r0, N: cols, K: cols, pack: p.packs[s] } satisfies RowsTask;
  }, what);
}

/**
 * The Gram sums of GramCollector.addBatchPair over `batches` in order, split over the rows of H (balanced by
 * the triangle's row lengths). H gets the upper triangle; with C: C += X_dᵀX_p and H_d's upper triangle.
 */
export async function gramBatches(
  wasm: Wasm, batches: Array<{ xp: number; xd: number; T: number }>, H: number, C: number, Hd: number, cols: number, what = "Gram",
): Promise<void> {
  const tokens = batches.reduce((s, b) => s + b.T, 0);
  const p = pool(wasm, tokens * cols * cols);
  if (!p) {
    const k = pruneKernels(wasm);
    for (const b of batches) {
      k.f32_gram_upper(b.xp, H, b.T, cols);
      if (C) {
        k.f32_gram_cross(b.xd, b.xp, C, b.T, cols);
        k.f32_gram_upper(b.xd, Hd, b.T, cols);
      }
    }
    return;
  }
  // row i of the upper triangle has cols − i elements (the cross term a full row: + cols)
  const blocks = shards(cols, p.threads, 4, (i) => (C ? 2 * (cols - i) + cols : cols - i));
  await p.all<number>("rows", (s) => {
    const b = blocks[s];
    if (!b) return undefined;
    return { op: "gram", batches, H, C, Hd, cols, i0: b[0], i1: b[1] } satisfies RowsTask;
  }, what);
}

/** FistaSolver's solve / iht over all rows, split into row blocks (each block its slot's pack). */
export async function fistaRows(wasm: Wasm, t: Omit<FistaRowsTask, "op" | "r0" | "r1" | "pack">, localPack: number, what = "FISTA"): Promise<void> {
  const p = pool(wasm, t.rows * t.cols * t.cols * Math.max(1, t.iters));
  if (!p) return fistaRowsLocal(wasm, { ...t, op: "fista", r0: 0, r1: t.rows, pack: localPack });
  const blocks = shards(t.rows, p.threads);
  await p.all<number>("rows", (s) => {
    const b = blocks[s];
    if (!b) return undefined;
    return { ...t, op: "fista", r0: b[0], r1: b[1], pack: p.packs[s] } satisfies RowsTask;
  }, what);
}

/**
 * SparseGPT's OBS loop (ObsRowsTask without the row range) over all rows, split into row blocks; `work` is
 * the multiply-adds it stands for (the pool is used only when that pays).
 */
export async function obsRows(wasm: Wasm, t: Omit<ObsRowsTask, "op" | "r0" | "r1">, rows: number, work: number, what = "OBS"): Promise<void> {
  const p = pool(wasm, work);
  if (!p) return obsRowsLocal(wasm, { ...t, op: "obs", r0: 0, r1: rows });
  const blocks = shards(rows, p.threads);
  await p.all<number>("rows", (s) => {
    const b = blocks[s];
    if (!b) return undefined;
    return { ...t, op: "obs", r0: b[0], r1: b[1] } satisfies RowsTask;
  }, what);
}

/** out = MᵀM for M (n×n) lower triangular (f32_tril_gram_rows), rows of the triangle split over the pool. */
export async function trilGram(wasm: Wasm, M: number, n: number, out: number, what = "H⁻¹ = L⁻ᵀL⁻¹"): Promise<void> {
  const f = wasm.exports as unknown as { f32_tril_gram_scratch(n: number): number; f32_tril_gram_rows(...a: number[]): void };
  const p = pool(wasm, (n * n * n) / 6);
  const a = wasm.arena;
  const m = a.mark();
  try {
    if (!p) return f.f32_tril_gram_rows(M, n, out, 0, n, a.allocBytes(f.f32_tril_gram_scratch(n)));
    // row i of the upper triangle costs ~ (n − i)²/2
    const blocks = shards(n, p.threads, 4, (i) => (n - i) * (n - i));
    const works = blocks.map(() => a.allocBytes(f.f32_tril_gram_scratch(n)));
    await p.all<number>("rows", (s) => {
      const b = blocks[s];
      if (!b) return undefined;
      return { op: "trilGram", m: M, n, out, i0: b[0], i1: b[1], work: works[s] } satisfies RowsTask;
    }, what);
  } finally {
    a.release(m);
  }
}
