/**
 * @file FISTA on a block of rows (FistaSolver.solve / iht of src/prune/methods/fista.ts), the code shared by
 * the worker task (./rows.worker.ts) and the single-thread path, so both run the same kernels in the same order.
 */
import type { Wasm } from "../wasm/runtime.js";
import { pruneKernels } from "../kernels/prune-api.js";
import type { FistaRowsTask } from "./rows.worker.js";

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
