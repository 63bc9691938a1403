/**
 * @file The sparse side of `linear()` (src/model/forward.ts): run a weight's compressed form with the kernel
 * its format calls for (GEMV for one position, GEMM for more), and place packed layouts into the arena.
 */
import type { SparseKernelApi } from "../kernels/sparse-api.js";
import { sparseKernels } from "../kernels/sparse-api.js";
import type { Arena, Wasm } from "../wasm/runtime.js";
import { WasmError } from "../errors.js";
import type { Model, SparseWeight, Tensor } from "../model/types.js";
import { bytes2of4, unpack2of4, type Packed24 } from "../sparse/nm.js";
import { PANEL, bytesCsr, unpackCsr, type PackedCsr } from "../sparse/bcsr.js";

/** y (T, N) = x (T, K) · Wᵀ for a compressed W; `scratch` of `scratchBytes` bytes (16-aligned) for the GEMMs. */
export function sparseLinear(k: SparseKernelApi, w: SparseWeight, x: number, y: number, T: number, scratch: number, scratchBytes: number): void {
  const { N, K } = w;
  if (T > 1 && k.f32_spmm_nt_scratch(T, N, K) > scratchBytes) {
    throw new WasmError(`sparse GEMM [${T}x${K}]·[${N}x${K}]ᵀ needs ${k.f32_spmm_nt_scratch(T, N, K)} scratch bytes, the run state has ${scratchBytes}`);
  }
  if (w.format === "2:4") {
    if (T === 1) k.f32_spmv_2of4_4x(w.vals, w.idx, x, y, N, K);
    else k.f32_spmm_2of4_4x_nt(x, w.vals, w.idx, y, T, N, K, scratch);
  } else {
    if (T === 1) k.f32_spmv_bcsr(w.rowptr, w.cols, w.vals, x, y, N, K);
    else k.f32_spmm_bcsr_nt(x, w.rowptr, w.cols, w.vals, y, T, N, K, scratch);
  }
}

/** Scratch bytes the sparse GEMMs of `model` need for up to maxT positions and outputs up to `widest` (0 if none is sparse). */
export function sparseScratchBytes(model: Model, maxT: number, widest: number): number {
  const any = model.weights.layers.some((lw) => Object.values(lw).some((t) => t && (t as { sparse?: unknown }).sparse)) || !!model.weights.lmHead.sparse;
  return any ? sparseKernels(model.wasm).f32_spmm_nt_scratch(maxT, widest, 0) : 0;
}

/** Copy a 2:4 kernel layout into the arena. */
export function place2of4(arena: Arena, p: Packed24): SparseWeight {
  const vals = arena.put(p.vals);
  const idx = arena.allocBytes(p.idx.length);
  arena.u8(idx, p.idx.length).set(p.idx);
  return { format: "2:4", N: p.N, K: p.K, vals, idx, bytes: bytes2of4(p.N, p.K) };
}

/** Copy a panel-CSR kernel layout into the arena. */
export function placeCsr(arena: Arena, c: PackedCsr): SparseWeight {
  const rowptr = arena.allocBytes(c.rowptr.length * 4);
  arena.u32(rowptr, c.rowptr.length).set(c.rowptr);
  const cols = arena.allocBytes(Math.max(c.cols.length, 1));
  arena.u8(cols, c.cols.length).set(c.cols);
  const vals = arena.alloc(Math.max(c.vals.length, 1));
  arena.f32(vals, c.vals.length).set(c.vals);
  return { format: "bcsr", N: c.N, K: c.K, nnz: c.vals.length, rowptr, cols, vals, bytes: bytesCsr(c.N, c.K, c.vals.length) };
}

/** Copies of a placed panel-CSR weight. */
export function readCsr(wasm: Wasm, w: Extract<SparseWeight, { format: "bcsr" }>): PackedCsr {
  const rows = Math.ceil(w.K / PANEL) * w.N + 1;
  return { N: w.N, K: w.K, rowptr: wasm.arena.u32(w.rowptr, rows).slice(), cols: wasm.arena.u8(w.cols, w.nnz).slice(), vals: wasm.arena.f32(w.vals, w.nnz).slice() };
}

/**
 * The dense values of a weight: its `data` view, or for a compressed operator (which holds no dense copy) a
 * new array rebuilt bit-exactly from its kernel layout. For inspect, save and decompress, one tensor at a time.
 */
export function denseWeight(wasm: Wasm, t: Tensor): Float32Array {
  if (!t.sparse) return t.data;
  return t.sparse.format === "2:4" ? unpack2of4(read2of4(wasm, t.sparse)) : unpackCsr(readCsr(wasm, t.sparse));
}

/** Copies of a placed 2:4 weight (for tests and decompression). */
export function read2of4(wasm: Wasm, w: Extract<SparseWeight, { format: "2:4" }>): Packed24 {
  const NB = Math.ceil(w.N / 4);
  const G = w.K / 4;
  return { N: w.N, K: w.K, vals: wasm.arena.f32(w.vals, NB * G * 8).slice(), idx: wasm.arena.u8(w.idx, NB * G * 2).slice() };
}
