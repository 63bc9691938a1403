/**
 * @file Row-block tasks of one operator (thin: kernels on pointers the main thread computed; see
 * src/parallel/rows.ts for the host side). Every task touches only its rows [r0, r1) of its outputs (its
 * rows of H for the Gram), so tasks of one batch never write the same memory.
 */
import { crashHook, threadWasm } from "./thread.js";
import { CTRL } from "./gemv.js";
import { pruneKernels } from "../kernels/prune-api.js";
import { fistaRowsLocal, obsRowsLocal } from "./rows-local.js";

export type RowsTask =
  /** C[r0:r1] (+)= α·op(A)[r0:r1]·B (f32_gemm_strided on a row block; pointers already offset) */
  | {
      op: "strided"; a: number; sai: number; sak: number; b: number; ldb: number; c: number; ldc: number;
      M: number; N: number; K: number; alpha: number; accumulate: number;
    }
  /** Y = X·Wᵀ on a row block of X (f32_gemm_nt with this slot's pack scratch) */
  | { op: "gemmNt"; x: number; w: number; y: number; M: number; N: number; K: number; pack: number }
  /** rows [i0, i1) of the Gram sums over the batches, in batch order */
  | { op: "gram"; batches: Array<{ xp: number; xd: number; T: number }>; H: number; C: number; Hd: number; cols: number; i0: number; i1: number }
  /** y[N] = W[N, K]·x (f32_gemv on a row block; pointers already offset) */
  | { op: "gemv"; w: number; x: number; y: number; N: number; K: number }
  /** serve generation's GEMV row blocks until told to stop (src/parallel/gemv.ts; `ctrl` the control block) */
  | { op: "gemvServe"; ctrl: number }
  /** rows [i0, i1) of (L⁻¹)ᵀ·L⁻¹ (f32_tril_gram_rows; `work` this task's scratch) */
  | { op: "trilGram"; m: number; n: number; out: number; i0: number; i1: number; work: number }
  | FistaRowsTask
  | ObsRowsTask;

/**
 * SparseGPT's OBS loop on rows [r0, r1) (src/prune/methods/sparsegpt.ts): buffers of the whole operator
 * (Err, S, M: rows × count of the block, row-major). N:M (m > 0): every block from column `from` on, each
 * followed by its lazy batch update of the rows' remaining columns. Unstructured (m = 0): the block
 * `block` with the mask M chosen by the main thread, its lazy update, then the scores of `scores` (the next
 * block) into S.
 */
export interface ObsRowsTask {
  op: "obs";
  W: number; Hinv: number; cols: number; Err: number; S: number; M: number;
  r0: number; r1: number; blockSize: number; n: number; m: number;
  from?: number;
  block?: [number, number];
  scores?: [number, number];
}

/**
 * FISTA on rows [r0, r1) of an operator (FistaSolver.solve / iht, src/prune/methods/fista.ts): full-size
 * buffers with the row offset applied here; `mask` 0 for none; iht: hard threshold to `pattern` each step.
 */
export interface FistaRowsTask {
  op: "fista";
  mode: "solve" | "iht";
  r0: number; r1: number; rows: number; cols: number;
  H: number; B: number; Y: number; G: number; Wa: number; Wb: number; T: number; lam: number; mask: number;
  start: number; out: number; iters: number; eta: number; pack: number;
  /** iht: the pattern, as unstructured top-`keep` per row or n of every m */
  pattern?: { kind: "unstructured"; keep: number } | { kind: "nm"; n: number; m: number };
}

export default function rows(t: RowsTask): number {
  crashHook(t.op);
  const wasm = threadWasm();
  const k = pruneKernels(wasm);
  const ex = wasm.exports as unknown as { f32_gemm_nt(...a: number[]): void };
  switch (t.op) {
    case "strided":
      k.f32_gemm_strided(t.a, t.sai, t.sak, t.b, t.ldb, t.c, t.ldc, t.M, t.N, t.K, t.alpha, t.accumulate, 0);
      return 0;
    case "gemmNt":
      ex.f32_gemm_nt(t.x, t.w, t.y, t.M, t.N, t.K, 0, t.pack);
      return 0;
    case "gram":
      for (const b of t.batches) {
        k.f32_gram_upper_rows(b.xp, t.H, b.T, t.cols, t.i0, t.i1);
        if (t.C) {
          k.f32_gemm_strided(b.xd + 4 * t.i0, 1, t.cols, b.xp, t.cols, t.C + 4 * t.i0 * t.cols, t.cols, t.i1 - t.i0, t.cols, b.T, 1, 1, 0);
          k.f32_gram_upper_rows(b.xd, t.Hd, b.T, t.cols, t.i0, t.i1);
        }
      }
      return 0;
    case "fista":
      fistaRowsLocal(wasm, t);
      return 0;
    case "obs":
      obsRowsLocal(wasm, t);
      return 0;
    case "gemv":
      (wasm.exports.f32_gemv as (...a: number[]) => void)(t.w, t.x, t.y, t.N, t.K, 0);
      return 0;
    case "gemvServe": {
      const c = new Int32Array(wasm.memory.buffer, t.ctrl, CTRL.ints);
      const gemv = wasm.exports.f32_gemv as (...a: number[]) => void;
      let seen = 0;
      for (;;) {
        Atomics.wait(c, CTRL.seq, seen);
        seen = Atomics.load(c, CTRL.seq);
        if (Atomics.load(c, CTRL.stop)) return 0;
        gemv(c[CTRL.w], c[CTRL.x], c[CTRL.y], c[CTRL.N], c[CTRL.K], 0);
        Atomics.store(c, CTRL.done, seen);
        Atomics.notify(c, CTRL.done);
      }
    }
    case "trilGram":
      (wasm.exports.f32_tril_gram_rows as (...a: number[]) => void)(t.m, t.n, t.out, t.i0, t.i1, t.work);
      return 0;
  }
}
