/**
 * @file The row-block tasks of the pruning methods — FISTA runs (FistaSolver.solve / iht of ./methods/fista.ts) and
 * SparseGPT's OBS loop (./methods/sparsegpt.ts) — with their host side: one task per row block over the executor's
 * slots (src/exec/executor.ts), or one inline when the work is small or there is one slot. A row's iterations
 * touch only that row (and H, B, Hinv), so the blocks run independently and the result never depends on the split.
 */
import type { Executor } from "../exec/executor.js";
import type { Wasm } from "../wasm/runtime.js";
import { kernels } from "../kernels/index.js";

/**
 * SparseGPT's OBS loop on rows [r0, r1): buffers of the whole operator (Err, S, M: rows × count of the block,
 * row-major). N:M (m > 0): every block from column `from` on, each followed by its lazy batch update of the
 * rows' remaining columns. Unstructured (m = 0): the block `block` with the mask M chosen by the main thread,
 * its lazy update, then the scores of `scores` (the next block) into S.
 */
export interface ObsRowsTask {
  op: "obs";
  W: number; Hinv: number; cols: number; Err: number; S: number; M: number;
  r0: number; r1: number; blockSize: number; n: number; m: number;
  /** this slot's GEMM packing scratch */
  pack: number;
  from?: number;
  block?: [number, number];
  scores?: [number, number];
  /** quantize the kept weights in the sweep (GPTQ; joint SparseGPT): the grid buffers of assembly/f32-obs.ts */
  quant?: ObsQuant;
}

/** The quantizer of an OBS sweep: scales qs (and zero points qz, 0 = symmetric) [rows][ng] in the arena. */
export interface ObsQuant {
  qs: number; qz: number; gidx: number; ng: number;
  /** > 0: dynamic groups of this many columns; 0: parameters given, column j in group gidx[j] */
  group: number;
  qmin: number; qmax: number;
}

/**
 * FISTA on rows [r0, r1) of an operator: full-size buffers with the row offset applied here; `mask` 0 for none;
 * iht: hard threshold to `pattern` each step.
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


/** FistaSolver's solve / iht on rows [r0, r1): the same kernels in the same order on any thread. */
function fistaRowBlock(wasm: Wasm, t: FistaRowsTask): number {
  const k = kernels(wasm);
  const a = wasm.arena;
  const gemm = kernels(wasm).f32_gemm_nt;
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
    return 0;
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
  return 0;
}

/** SparseGPT's OBS loop on rows [r0, r1) (ObsRowsTask): the same kernels in the same order on any thread. */
function obsRowBlock(wasm: Wasm, t: ObsRowsTask): number {
  const k = kernels(wasm);
  const o = k;
  const { W, Hinv, cols, Err, S, M, r0, r1, n, m } = t;
  const rows = r1 - r0;
  const block = (i1: number, i2: number) => {
    const count = i2 - i1;
    // N:M: the row blocks run through the blocks at their own pace, so the rows keep a fixed stride
    // (blockSize) in Err/S/M; unstructured: rows × count contiguous (the main thread selects over it)
    const ld = m > 0 ? t.blockSize : count;
    const q = t.quant;
    o.f32_obs_block(W, Hinv, cols, Err, S, M, ld, r0, r1, i1, count, n, m, q?.qs ?? 0, q?.qz ?? 0, q?.gidx ?? 0, q?.ng ?? 0, q?.group ?? 0, q?.qmin ?? 0, q?.qmax ?? 0);
    // W[r0:r1, i2:] −= Err1[r0:r1] · Hinv[i1:i2, i2:]
    if (i2 < cols && rows > 0) {
      k.f32_gemm_strided(Err + 4 * r0 * ld, ld, 1, Hinv + 4 * (i1 * cols + i2), cols, W + 4 * (r0 * cols + i2), cols, rows, cols - i2, count, -1, 1, 0, t.pack);
    }
  };
  if (m > 0) {
    for (let i1 = t.from ?? 0; i1 < cols; i1 += t.blockSize) block(i1, Math.min(i1 + t.blockSize, cols));
    return 0;
  }
  if (t.block) block(t.block[0], t.block[1]);
  if (t.scores) o.f32_obs_scores(W, Hinv, cols, S, r0, r1, t.scores[0], t.scores[1] - t.scores[0]);
  return 0;
}

/** The handlers of the pruning row tasks. */
export const PRUNE_ROW_HANDLERS = { fista: fistaRowBlock, obs: obsRowBlock } as const;

/** FistaSolver's solve / iht over all rows, split into row blocks (each block its slot's pack). */
export async function fistaRows(exec: Executor, t: Omit<FistaRowsTask, "op" | "r0" | "r1" | "pack">, what = "FISTA"): Promise<void> {
  const blocks = exec.split(t.rows, t.rows * t.cols * t.cols * Math.max(1, t.iters));
  await exec.each(blocks, ([r0, r1], s) => ({ ...t, op: "fista", r0, r1, pack: exec.packs[s]! }) satisfies FistaRowsTask, what);
}

/**
 * SparseGPT's OBS loop (ObsRowsTask without the row range) over all rows, split into row blocks; `work` is the
 * multiply-adds it stands for (blocks of several tasks only when that pays).
 */
export async function obsRows(exec: Executor, t: Omit<ObsRowsTask, "op" | "r0" | "r1" | "pack">, rows: number, work: number, what = "OBS"): Promise<void> {
  await exec.each(exec.split(rows, work), ([r0, r1], s) => ({ ...t, op: "obs", r0, r1, pack: exec.packs[s]! }) satisfies ObsRowsTask, what);
}
