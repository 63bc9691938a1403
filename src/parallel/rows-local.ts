/**
 * @file FISTA on a block of rows (FistaSolver.solve / iht of src/prune/methods/fista.ts), the code shared by
 * the worker task (./rows.worker.ts) and the single-thread path, so both run the same kernels in the same order.
 */
import type { Wasm } from "../wasm/runtime.js";
import { pruneKernels } from "../kernels/prune-api.js";
import type { FistaRowsTask, ObsRowsTask } from "./rows.worker.js";

/** The row block of FistaSolver.solve / iht: same kernels, same order, on rows [r0, r1) only. */
export function fistaRowsLocal(wasm: Wasm, t: FistaRowsTask): void {
  const k = pruneKernels(wasm);
  const a = wasm.arena;
  const gemm = (wasm.exports as unknown as { f32_gemm_nt(...a: number[]): void }).f32_gemm_nt;
  const { r0, r1, cols } = t;
  const rows = r1 - r0;
  const n = rows * cols;
  const at = (p: number) => (p ? p + 4 * r0 * cols : 0);
  const atRow = (p: number) => p + 4 * r0;
  const [Y, G, B, Wa, Wb, mask, start, out] = [t.Y, t.G, t.B, t.Wa, t.Wb, t.mask, t.start, t.out].map(at);
  const T = atRow(t.T);
  const lam = atRow(t.lam);
  a.f32(Y, n).set(a.f32(start, n));
  a.f32(Wa, n).set(a.f32(start, n));
  if (t.mode === "solve") {
    a.f32(T, rows).fill(1);
    let wOld = Wa;
    let wNew = Wb;
    for (let it = 0; it < t.iters; it++) {
      gemm(Y, t.H, G, rows, cols, cols, 0, t.pack);
      k.f32_fista_step(Y, G, B, wOld, wNew, lam, T, mask, rows, cols, t.eta);
      [wOld, wNew] = [wNew, wOld];
    }
    if (out !== wOld) a.f32(out, n).set(a.f32(wOld, n));
    return;
  }
  const p = t.pattern!;
  for (let it = 0; it < t.iters; it++) {
    a.f32(T, rows).fill(1);
    gemm(Y, t.H, G, rows, cols, cols, 0, t.pack);
    k.f32_fista_step(Y, G, B, Wa, Wb, lam, T, 0, rows, cols, t.eta);
    if (p.kind === "nm") k.f32_nm_mask(Wb, mask, rows, cols, p.n, p.m);
    else k.f32_topk_mask(Wb, mask, rows, cols, p.keep);
    k.f32_mask_mul(Wb, mask, Wa, n);
    a.f32(Y, n).set(a.f32(Wa, n));
  }
  a.f32(out, n).set(a.f32(Wa, n));
}

interface ObsKernels {
  f32_obs_scores(w: number, hinv: number, cols: number, s: number, r0: number, r1: number, i1: number, count: number): void;
  f32_obs_block(w: number, hinv: number, cols: number, err: number, s: number, mask: number, ld: number, r0: number, r1: number, i1: number, count: number, n: number, m: number): void;
}

/** SparseGPT's OBS loop on rows [r0, r1) (ObsRowsTask): the same kernels in the same order on any thread. */
export function obsRowsLocal(wasm: Wasm, t: ObsRowsTask): void {
  const k = pruneKernels(wasm);
  const o = wasm.exports as unknown as ObsKernels;
  const { W, Hinv, cols, Err, S, M, r0, r1, n, m } = t;
  const rows = r1 - r0;
  const block = (i1: number, i2: number) => {
    const count = i2 - i1;
    // N:M: the row blocks run through the blocks at their own pace, so the rows keep a fixed stride
    // (blockSize) in Err/S/M; unstructured: rows × count contiguous (the main thread selects over it)
    const ld = m > 0 ? t.blockSize : count;
    o.f32_obs_block(W, Hinv, cols, Err, S, M, ld, r0, r1, i1, count, n, m);
    // W[r0:r1, i2:] −= Err1[r0:r1] · Hinv[i1:i2, i2:]
    if (i2 < cols && rows > 0) {
      k.f32_gemm_strided(Err + 4 * r0 * ld, ld, 1, Hinv + 4 * (i1 * cols + i2), cols, W + 4 * (r0 * cols + i2), cols, rows, cols - i2, count, -1, 1, 0);
    }
  };
  if (m > 0) {
    for (let i1 = t.from ?? 0; i1 < cols; i1 += t.blockSize) block(i1, Math.min(i1 + t.blockSize, cols));
    return;
  }
  if (t.block) block(t.block[0], t.block[1]);
  if (t.scores) o.f32_obs_scores(W, Hinv, cols, S, r0, r1, t.scores[0], t.scores[1] - t.scores[0]);
}
