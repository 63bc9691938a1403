/**
 * @file Linear weights (src/model/types.ts `LinearWeight`) beyond the dense GEMM: run a compressed operator with the
 * kernel its format calls for (GEMV for one position, GEMM for more), place packed layouts into the arena, and
 * rebuild dense values from them.
 */
import type { SparseKernelApi } from "../kernels/sparse-api.js";
import type { Arena, Wasm } from "../wasm/runtime.js";
import { UsageError, WasmError } from "../errors.js";
import { HF_LINEAR_NAMES, LINEAR_OPS, type CompressedLinear, type DenseLinear, type LayerWeights, type Linear2of4, type LinearCsr, type LinearOp, type LinearWeight } from "./types.js";
import { bytes2of4, unpack2of4, type Packed24 } from "../sparse/nm.js";
import { PANEL, bytesCsr, unpackCsr, type PackedCsr } from "../sparse/bcsr.js";

/** y (T, N) = x (T, K) · Wᵀ for a compressed W; `scratch` of `scratchBytes` bytes (16-aligned) for the GEMMs. */
export function compressedLinear(k: SparseKernelApi, w: CompressedLinear, x: number, y: number, T: number, scratch: number, scratchBytes: number): void {
  const [N, K] = w.shape as [number, number];
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

/** The dense form of `w`, or a UsageError naming `what` and the way out (pruning and training edit dense weights). */
export function denseLinear(w: LinearWeight, what: string): DenseLinear {
  if (w.format !== "dense") {
    throw new UsageError(`${what} is stored compressed (${w.format}) and has no dense copy in memory; decompress the model first (wasprune decompress)`);
  }
  return w;
}

/** Copy a 2:4 kernel layout into the arena. */
export function place2of4(arena: Arena, p: Packed24): Linear2of4 {
  const vals = arena.put(p.vals);
  const idx = arena.allocBytes(p.idx.length);
  arena.u8(idx, p.idx.length).set(p.idx);
  return { format: "2:4", shape: [p.N, p.K], vals, idx, bytes: bytes2of4(p.N, p.K) };
}

/** Copy a panel-CSR kernel layout into the arena. */
export function placeCsr(arena: Arena, c: PackedCsr): LinearCsr {
  const rowptr = arena.allocBytes(c.rowptr.length * 4);
  arena.u32(rowptr, c.rowptr.length).set(c.rowptr);
  const cols = arena.allocBytes(Math.max(c.cols.length, 1));
  arena.u8(cols, c.cols.length).set(c.cols);
  const vals = arena.alloc(Math.max(c.vals.length, 1));
  arena.f32(vals, c.vals.length).set(c.vals);
  return { format: "csr", shape: [c.N, c.K], nnz: c.vals.length, rowptr, cols, vals, bytes: bytesCsr(c.N, c.K, c.vals.length) };
}

/** Copies of a placed panel-CSR weight. */
export function readCsr(wasm: Wasm, w: LinearCsr): PackedCsr {
  const [N, K] = w.shape as [number, number];
  const rows = Math.ceil(K / PANEL) * N + 1;
  return { N, K, rowptr: wasm.arena.u32(w.rowptr, rows).slice(), cols: wasm.arena.u8(w.cols, w.nnz).slice(), vals: wasm.arena.f32(w.vals, w.nnz).slice() };
}

/** Copies of a placed 2:4 weight (for tests and decompression). */
export function read2of4(wasm: Wasm, w: Linear2of4): Packed24 {
  const [N, K] = w.shape as [number, number];
  const NB = Math.ceil(N / 4);
  const G = K / 4;
  return { N, K, vals: wasm.arena.f32(w.vals, NB * G * 8).slice(), idx: wasm.arena.u8(w.idx, NB * G * 2).slice() };
}

/**
 * The dense values of a weight: a dense one's `data` view, or for a compressed operator (which holds no dense
 * copy) a new array rebuilt bit-exactly from its kernel layout. For inspect, save and decompress, one at a time.
 */
export function denseWeight(wasm: Wasm, t: LinearWeight | { data: Float32Array }): Float32Array {
  if (!("format" in t) || t.format === "dense") return t.data;
  return t.format === "2:4" ? unpack2of4(read2of4(wasm, t)) : unpackCsr(readCsr(wasm, t));
}

/** A decoder layer whose linear weights are all dense (what pruning, training and structured pruning edit). */
export type DenseLayer = Omit<LayerWeights, LinearOp> & Record<LinearOp, DenseLinear>;

/** `lw` with every linear weight dense, or a UsageError naming the first compressed one (layer `l`). */
export function denseLayer(lw: LayerWeights, l: number): DenseLayer {
  for (const op of LINEAR_OPS) denseLinear(lw[op], `model.layers.${l}.${HF_LINEAR_NAMES[op]}.weight`);
  return lw as DenseLayer;
}
