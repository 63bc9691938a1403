/**
 * @file Linear weights (src/model/types.ts `LinearWeight`) beyond the row-major GEMM: run a packed (p8) or compressed
 * operator with the kernel its layout and value dtype call for (GEMV for one position, GEMM for more), place
 * those layouts into the arena, and rebuild dense f32 values from them (exactly).
 */
import type { Arena, Wasm } from "../wasm/runtime.js";
import { UsageError, WasmError } from "../errors.js";
import { HF_LINEAR_NAMES, LINEAR_OPS, type CompressedLinear, type DenseLinear, type LayerWeights, type Linear2of4, type LinearCsr, type LinearInt, type LinearInt2of4, type LinearOp, type LinearPacked, type LinearWeight, type Model, type Tensor, type WeightDType, dense } from "./types.js";
import { dequantize, type QuantizedWeight } from "../quant/codes.js";
import { packRows, unpackRows } from "../quant/compressed-tensors.js";
import type { Grid } from "../quant/scheme.js";
import { NotFiniteInF16, f32Vals2of4, f32Values, halfVals2of4, halfValues, p8Bytes, packP8, unpackP8, weightBytes } from "./packed.js";
import { bytes2of4, unpack2of4, type Packed24 } from "../sparse/nm.js";
import { PANEL, bytesCsr, unpackCsr, type PackedCsr } from "../sparse/bcsr.js";
import type { Kernels } from "../wasm/contract.js";

/** The weights `runLinear` takes: packed dense (p8) or compressed. */
export type KernelLinear = LinearPacked | CompressedLinear;

/** Bytes of scratch `runLinear` needs for T positions of `w` (0 for one position, but for the integer kernels). */
export function linearScratchBytes(k: Kernels, w: KernelLinear, T: number): number {
  const [N, K] = w.shape as [number, number];
  if (w.format === "int") return k.q_gemm_nt_scratch(T, K, w.block);
  if (T <= 1) return 0;
  return w.format === "p8" ? k.gemm_p8_nt_scratch(T, K) : k.f32_spmm_nt_scratch(T, N, K);
}

/**
 * How the integer kernels round activations (src/model/types.ts LinearIntDense.activationBits): 16, or 8 for
 * int8 and int4 operators in dense panels (W8A8, W4A8); an operator in the 2:4 int4 layout keeps 16 (placed for
 * 8, a 2:4 one takes the dense panels: placeInt).
 */
export type IntActivationBits = 16 | 8;

/** Whether `w` runs on int8 activations (W8A8, W4A8: qu8a8_gemm_nt, qu4a8_gemm_nt). */
const a8 = (w: LinearInt): boolean => w.pattern === "dense" && w.activationBits === 8;

/** Bytes of scratch the integer kernels need at most for T positions of K inputs (any block, int16 activations: the widest). */
export function intScratchBytes(k: Kernels, T: number, K: number): number {
  return Math.max(k.q_gemm_nt_scratch(T, K, 32), k.q_gemm_nt_scratch(T, K, 128));
}

/**
 * y (T, N) = x (T, K) · Wᵀ for a packed or compressed W, by the kernel of its layout and value dtype (a GEMV
 * for one position, a GEMM for more); `scratch` of `scratchBytes` bytes (16-aligned) for the GEMMs.
 */
export function runLinear(k: Kernels, w: KernelLinear, x: number, y: number, T: number, scratch: number, scratchBytes: number): void {
  const [N, K] = w.shape as [number, number];
  const need = linearScratchBytes(k, w, T);
  if (need > scratchBytes) throw new WasmError(`${w.format} GEMM [${T}x${K}]·[${N}x${K}]ᵀ needs ${need} scratch bytes, the run state has ${scratchBytes}`);
  if (w.format === "int") {
    const xs = roundActivations(k, w, x, T, scratch);
    if (w.pattern === "2:4") k.qu4_gemm_2of4_nt(scratch, xs, w.codes, w.idx, w.scales, w.zeroPoints, y, T, N, K, w.ng, w.block);
    else (a8(w) ? (w.bits === 8 ? k.qu8a8_gemm_nt : k.qu4a8_gemm_nt) : w.bits === 8 ? k.qu8_gemm_nt : k.qu4_gemm_nt)(scratch, xs, w.codes, w.scales, w.zeroTerms, y, T, N, K, w.ng, w.block);
    return;
  }
  const d = w.dtype;
  if (w.format === "p8") {
    if (T === 1) (d === "f32" ? k.f32_gemv_p8 : d === "bf16" ? k.bf16_gemv_p8 : k.f16_gemv_p8)(w.ptr, x, y, N, K);
    else (d === "f32" ? k.f32_gemm_p8_nt : d === "bf16" ? k.bf16_gemm_p8_nt : k.f16_gemm_p8_nt)(x, w.ptr, y, T, N, K, scratch);
  } else if (w.format === "2:4") {
    if (T === 1) (d === "f32" ? k.f32_spmv_2of4_4x : d === "bf16" ? k.bf16_spmv_2of4_4x : k.f16_spmv_2of4_4x)(w.vals, w.idx, x, y, N, K);
    else (d === "f32" ? k.f32_spmm_2of4_4x_nt : d === "bf16" ? k.bf16_spmm_2of4_4x_nt : k.f16_spmm_2of4_4x_nt)(x, w.vals, w.idx, y, T, N, K, scratch);
  } else {
    if (T === 1) (d === "f32" ? k.f32_spmv_bcsr : d === "bf16" ? k.bf16_spmv_bcsr : k.f16_spmv_bcsr)(w.rowptr, w.cols, w.vals, x, y, N, K);
    else (d === "f32" ? k.f32_spmm_bcsr_nt : d === "bf16" ? k.bf16_spmm_bcsr_nt : k.f16_spmm_bcsr_nt)(x, w.rowptr, w.cols, w.vals, y, T, N, K, scratch);
  }
}

/** The dense form of `w`, or a UsageError naming `what` and the way out (pruning and training edit dense weights). */
export function denseLinear(w: LinearWeight, what: string): DenseLinear {
  if (w.format !== "dense") {
    if (w.format === "p8") throw new UsageError(`${what} was loaded packed for inference (p8 panels, ${w.dtype}); this command needs row-major f32 weights (load without --weights-dtype)`);
    if (w.format === "int") throw new UsageError(`${what} was loaded as int${w.bits} codes for the integer kernels; this command needs row-major f32 weights (load without --weights-dtype)`);
    throw new UsageError(`${what} is stored compressed (${w.format}) and has no dense copy in memory; decompress the model first (wasprune decompress)`);
  }
  return w;
}

/** Copy a 2:4 kernel layout into the arena, its values in `dtype` (half: the half layout of assembly/spmm-nm.ts). */
export function place2of4(arena: Arena, p: Packed24, dtype: WeightDType = "f32"): Linear2of4 {
  const vals = dtype === "f32" ? arena.put(p.vals) : putU16(arena, halfVals2of4(p.vals, dtype));
  const idx = arena.allocBytes(p.idx.length);
  arena.u8(idx, p.idx.length).set(p.idx);
  return { format: "2:4", dtype, shape: [p.N, p.K], vals, idx, bytes: bytes2of4(p.N, p.K, weightBytes(dtype)) };
}

/** Copy a panel-CSR kernel layout into the arena, its values in `dtype`. */
export function placeCsr(arena: Arena, c: PackedCsr, dtype: WeightDType = "f32"): LinearCsr {
  const rowptr = arena.allocBytes(c.rowptr.length * 4);
  arena.u32(rowptr, c.rowptr.length).set(c.rowptr);
  const cols = arena.allocBytes(Math.max(c.cols.length, 1));
  arena.u8(cols, c.cols.length).set(c.cols);
  let vals: number;
  if (dtype === "f32") {
    vals = arena.alloc(Math.max(c.vals.length, 1));
    arena.f32(vals, c.vals.length).set(c.vals);
  } else {
    vals = putU16(arena, halfValues(c.vals, dtype));
  }
  return { format: "csr", dtype, shape: [c.N, c.K], nnz: c.vals.length, rowptr, cols, vals, bytes: bytesCsr(c.N, c.K, c.vals.length, weightBytes(dtype)) };
}

/**
 * Round x (T positions) for the integer kernels of `w` into `scratch` (linearScratchBytes of w for T, 16-aligned):
 * the int16 (or, W4A8, int8) copy at `scratch`, and the block scales at the pointer returned.
 */
export function roundActivations(k: Kernels, w: LinearInt, x: number, T: number, scratch: number): number {
  const K = w.shape[1]!;
  const Kp = Math.ceil(K / w.block) * w.block;
  const xs = scratch + T * Kp * 2;
  if (a8(w)) {
    k.i8_quantize_blocks(x, T, K, w.block, w.bits, scratch, xs);
    return xs;
  }
  k.i16_quantize_blocks(x, T, K, w.block, w.pattern === "2:4" ? 2 : w.bits === 4 ? 1 : 0, scratch, xs);
  return xs;
}

/** The activation block of the integer kernels for `grid` (the group size; 128 per channel), or undefined: no kernel for it. */
export function intKernelBlock(grid: Grid): number | undefined {
  if (grid.strategy === "channel") return 128;
  return grid.group === 32 || grid.group === 64 || grid.group === 128 ? grid.group : undefined;
}

/** Words (u32) of 32 inputs of one row in the integer kernels' panels: 8 for int8, 4 for int4. */
const chunkWords = (bits: number): number => (bits === 8 ? 8 : 4);

/** Bytes of one 4-row panel of the integer kernels' codes: ceil(K/block)·block/32 chunks of 4 rows. */
export function intPanelBytes(K: number, bits: number, block: number): number {
  return (Math.ceil(K / block) * block / 32) * 4 * 4 * chunkWords(bits);
}

/** Bytes of the codes of an [N,K] operator in the integer kernels' 4-row panels (K padded to the block). */
function panelBytes(N: number, K: number, bits: number, block: number): number {
  return Math.ceil(N / 4) * intPanelBytes(K, bits, block);
}

/** Bytes of an [N,K] operator on `grid` in the integer kernels' layout (code panels, scales, zero-point terms). */
export function intBytes(N: number, K: number, grid: Grid): number {
  return panelBytes(N, K, grid.bits, intKernelBlock(grid)!) + (grid.symmetric ? 4 : 8) * Math.ceil(N / 4) * 4 * grid.ng;
}

/**
 * Place a quantized operator for the integer kernels: on int16 activations an int4 one whose every group of 4
 * inputs holds at most 2 nonzero weights (a 2:4-pruned model) in the 2:4 layout (its kept codes and their
 * positions: 3 bits a weight), any other — and on int8 activations every one, since the dense int4 panels on int8
 * activations run ~2x faster than the 2:4 kernel on int16 (`bench kernels`) — in the dense panels of `packed`, its codes as pack-quantized stores them
 * (weight_packed's I32 words: N rows of ceil(K/(32/bits)) words, whose little-endian bytes are the codes in
 * input order), interleaved into 4-row panels of 32 inputs (assembly/qgemm.ts); the f32 scales, and with zero
 * points the terms s·(offset + z).
 */
export function placeInt(
  wasm: Wasm, N: number, K: number, grid: Grid, packed: Int32Array, scale: Float32Array, zero: Int8Array | undefined, activationBits: IntActivationBits = 16,
): LinearInt {
  const { arena } = wasm;
  const block = intKernelBlock(grid);
  if (block === undefined) throw new RangeError(`placeInt: no integer kernel for groups of ${grid.group}`);
  if (grid.bits === 4 && activationBits === 16) {
    const sparse = place2of4Int(wasm, N, K, grid, block, packed, scale, zero);
    if (sparse) return sparse;
  }
  const rowWords = Math.ceil(K / (32 / grid.bits));
  const cw = chunkWords(grid.bits);
  const chunks = Math.ceil(K / block) * block / 32;
  const bytes = panelBytes(N, K, grid.bits, block);
  const codes = arena.allocBytes(Math.max(bytes, 16));
  const dst = arena.u32(codes, bytes / 4);
  let o = 0;
  for (let p = 0; p < N; p += 4) {
    for (let c = 0; c < chunks; c++) {
      for (let r = p; r < p + 4; r++) {
        const from = r * rowWords + c * cw;
        const n = r < N ? Math.max(0, Math.min(cw, rowWords - c * cw)) : 0;
        for (let i = 0; i < n; i++) dst[o + i] = packed[from + i]!;
        for (let i = n; i < cw; i++) dst[o + i] = 0;
        o += cw;
      }
    }
  }
  const rows = Math.ceil(N / 4) * 4;
  const n = rows * grid.ng;
  const scales = arena.allocBytes(Math.max(4 * n, 16));
  const sc = arena.f32(scales, n);
  sc.fill(0);
  sc.set(scale.subarray(0, N * grid.ng));
  let zeroTerms = 0;
  if (zero) {
    // with zero points the kernels read c = s·(2^(bits−1) + z) per group; symmetric, they form s·2^(bits−1)
    zeroTerms = arena.allocBytes(Math.max(4 * n, 16));
    const zc = arena.f32(zeroTerms, n);
    zc.fill(0);
    const off = 1 << (grid.bits - 1);
    for (let i = 0; i < N * grid.ng; i++) zc[i] = Math.fround(scale[i]! * (off + zero[i]!));
  }
  return {
    format: "int", pattern: "dense", bits: grid.bits, shape: [N, K], strategy: grid.strategy, ng: grid.ng, group: grid.group, symmetric: grid.symmetric, block,
    activationBits, codes, scales, zeroTerms, bytes: intBytes(N, K, grid) };
}

/** Bytes of the 2:4 int4 layout of an [N,K] operator with ng scale groups a row (block B; zero points if asymmetric). */
export function int2of4Bytes(N: number, K: number, ng: number, block: number, symmetric: boolean): number {
  const NB = Math.ceil(N / 4);
  const Kp = Math.ceil(K / block) * block;
  return NB * Kp + NB * (Kp / 2) + NB * ng * 16 + (symmetric ? 0 : NB * ng * 16);
}

/**
 * An int4 operator in the 2:4 layout (assembly/qgemm.ts: its kept codes and their positions, built by the
 * qu4_place_2of4 kernel from the pack-quantized words), if every group of 4 inputs holds at most 2 nonzero
 * weights; else undefined, and the arena as it was.
 */
function place2of4Int(wasm: Wasm, N: number, K: number, grid: Grid, block: number, packed: Int32Array, scale: Float32Array, zero: Int8Array | undefined): LinearInt2of4 | undefined {
  const placed = place2of4With(wasm, N, K, grid, block, scale, zero, (codes, idx, Kp) => {
    const words = copyIn(wasm.arena, packed);
    const zp = zero ? copyIn(wasm.arena, zero) : 0;
    return wasm.exports.qu4_place_2of4(words, N, K, zp, grid.ng, grid.group, Kp, codes, idx);
  });
  return "badGroup" in placed ? undefined : placed;
}

/**
 * An int4 operator stored in wasprune's compact 2:4 layout (`kept`: the kept codes' words, `bitmask`: which inputs
 * are kept; src/quant/compressed-tensors.ts) in the 2:4 layout, by the qu4_place_2of4_kept kernel; or the first
 * group (row·(Kp/4) + g, Kp: K padded to the block) that does not keep exactly 2 of its 4 inputs (g = K/4: a mask
 * bit past K), and the arena as it was.
 */
export function placeInt2of4Kept(
  wasm: Wasm, N: number, K: number, grid: Grid, kept: Int32Array, bitmask: Uint8Array, scale: Float32Array, zero: Int8Array | undefined,
): LinearInt2of4 | { badGroup: number; Kp: number } {
  const block = intKernelBlock(grid);
  if (block === undefined || grid.bits !== 4) throw new RangeError(`placeInt2of4Kept: no 2:4 int4 kernel for int${grid.bits} in groups of ${grid.group}`);
  return place2of4With(wasm, N, K, grid, block, scale, zero, (codes, idx, Kp) =>
    wasm.exports.qu4_place_2of4_kept(copyIn(wasm.arena, kept), copyIn(wasm.arena, bitmask), N, K, Kp, codes, idx));
}

/** A copy of `v`'s bytes in the arena (a kernel's input); its pointer. */
function copyIn(arena: Arena, v: Int32Array | Int8Array | Uint8Array): number {
  const p = arena.allocBytes(Math.max(v.byteLength, 16));
  arena.u8(p, v.byteLength).set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return p;
}

/**
 * Allocate the 2:4 int4 layout, run `build(codes, idx, Kp)` (a placement kernel on inputs it copies into the arena
 * above a mark, released after; −1 or the first bad group), then the scales and zero points in the layout.
 */
function place2of4With(
  wasm: Wasm, N: number, K: number, grid: Grid, block: number, scale: Float32Array, zero: Int8Array | undefined,
  build: (codes: number, idx: number, Kp: number) => number,
): LinearInt2of4 | { badGroup: number; Kp: number } {
  const { arena } = wasm;
  const NB = Math.ceil(N / 4);
  const Kp = Math.ceil(K / block) * block;
  const G = Kp / 4;
  const ng = grid.ng;
  const start = arena.mark();
  const codesPtr = arena.allocBytes(Math.max(NB * Kp, 16));
  const idxPtr = arena.allocBytes(Math.max(NB * G * 2, 16));
  const scalesPtr = arena.allocBytes(NB * ng * 16);
  const zeroPoints = zero ? arena.allocBytes(NB * ng * 16) : 0;
  const m = arena.mark();
  const bad = build(codesPtr, idxPtr, Kp);
  arena.release(m);
  if (bad >= 0) {
    arena.release(start);
    return { badGroup: bad, Kp };
  }
  const sc = arena.f32(scalesPtr, NB * ng * 4);
  sc.fill(0);
  for (let r = 0; r < N; r++) for (let g = 0; g < ng; g++) sc[((r >> 2) * ng + g) * 4 + (r & 3)] = scale[r * ng + g]!;
  if (zero) {
    const z16 = new Int16Array(arena.u8(zeroPoints, NB * ng * 16).buffer, zeroPoints, NB * ng * 8);
    z16.fill(0);
    for (let r = 0; r < N; r++) {
      for (let g = 0; g < ng; g++) {
        const at = ((r >> 2) * ng + g) * 8 + 2 * (r & 3);
        z16[at] = z16[at + 1] = zero[r * ng + g]!;
      }
    }
  }
  return {
    format: "int", pattern: "2:4", bits: 4, shape: [N, K], strategy: grid.strategy, ng, group: grid.group, symmetric: grid.symmetric, block,
    codes: codesPtr, idx: idxPtr, scales: scalesPtr, zeroPoints, bytes: int2of4Bytes(N, K, ng, block, grid.symmetric),
  };
}

/** The quantized weight a placed 2:4 int4 operator holds (codes — a zero weight's the zero point —, scales, zero points). */
function read2of4Int(wasm: Wasm, w: LinearInt2of4): QuantizedWeight {
  const [N, K] = w.shape as [number, number];
  const NB = Math.ceil(N / 4);
  const Kp = Math.ceil(K / w.block) * w.block;
  const G = Kp / 4;
  const ng = w.ng;
  const grid: Grid = { strategy: w.strategy, group: w.group, ng, bits: 4, symmetric: w.symmetric };
  const codes = wasm.arena.u8(w.codes, NB * Kp);
  const idx = wasm.arena.u8(w.idx, NB * G * 2);
  const sc = wasm.arena.f32(w.scales, NB * ng * 4);
  const scale = new Float32Array(N * ng);
  const zero = w.symmetric ? undefined : new Int8Array(N * ng);
  const zp = zero ? new Int16Array(wasm.memory.buffer, w.zeroPoints, NB * ng * 8) : undefined;
  for (let r = 0; r < N; r++) {
    for (let g = 0; g < ng; g++) {
      scale[r * ng + g] = sc[((r >> 2) * ng + g) * 4 + (r & 3)]!;
      if (zero) zero[r * ng + g] = zp![((r >> 2) * ng + g) * 8 + 2 * (r & 3)]!;
    }
  }
  const out = new Int8Array(N * K);
  for (let r = 0; r < N; r++) {
    const b = r >> 2, rr = r & 3;
    for (let k = 0; k < K; k++) out[r * K + k] = zero ? zero[r * ng + Math.floor(k / w.group)]! : 0;
    for (let g = 0; g < G; g++) {
      const nib = (idx[(b * G + g) * 2 + (rr >> 1)]! >> (4 * (rr & 1))) & 15;
      for (let s = 0; s < 2; s++) {
        const k = 4 * g + (s === 0 ? nib & 3 : nib >> 2);
        if (k >= K) continue;
        const byte = codes[b * Kp + (g >> 2) * 16 + 2 * (2 * rr + s) + ((g & 3) >> 1)]!;
        const v = (byte >> (4 * (g & 1))) & 15;
        out[r * K + k] = v >= 8 ? v - 16 : v;
      }
    }
  }
  return { N, K, grid, codes: out, scale, ...(zero ? { zero } : {}) };
}

/** Place a quantized weight held on the host (codes as Int8, src/quant/codes.ts) for the integer kernels. */
export function placeQuantized(wasm: Wasm, q: QuantizedWeight, activationBits: IntActivationBits = 16): LinearInt {
  return placeInt(wasm, q.N, q.K, q.grid, packRows(q.codes, q.N, q.K, q.grid.bits), q.scale, q.zero, activationBits);
}

/** The quantized weight a placed integer operator holds (codes, scales and zero points, exactly). */
export function readInt(wasm: Wasm, w: LinearInt): QuantizedWeight {
  if (w.pattern === "2:4") return read2of4Int(wasm, w);
  const [N, K] = w.shape as [number, number];
  const rowWords = Math.ceil(K / (32 / w.bits));
  const cw = chunkWords(w.bits);
  const chunks = Math.ceil(K / w.block) * w.block / 32;
  const src = wasm.arena.u32(w.codes, panelBytes(N, K, w.bits, w.block) / 4);
  const words = new Int32Array(N * rowWords);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < rowWords; j++) words[n * rowWords + j] = src[((n >> 2) * chunks + Math.floor(j / cw)) * 4 * cw + (n & 3) * cw + (j % cw)]!;
  }
  const scale = wasm.arena.f32(w.scales, N * w.ng).slice();
  const zero = w.symmetric ? undefined : new Int8Array(N * w.ng);
  if (zero) {
    const zc = wasm.arena.f32(w.zeroTerms, N * w.ng);
    const off = 1 << (w.bits - 1);
    for (let i = 0; i < N * w.ng; i++) zero[i] = Math.round(zc[i]! / scale[i]!) - off;
  }
  const grid: Grid = { strategy: w.strategy, group: w.group, ng: w.ng, bits: w.bits, symmetric: w.symmetric };
  return { N, K, grid, codes: unpackRows(words, N, K, w.bits), scale, ...(zero ? { zero } : {}) };
}

/** Copy p8 panels (packP8) of an [N,K] weight into the arena. */
export function placeP8(arena: Arena, panels: Uint8Array, N: number, K: number, dtype: WeightDType): LinearPacked {
  const ptr = arena.allocBytes(Math.max(panels.length, 16));
  arena.u8(ptr, panels.length).set(panels);
  return { format: "p8", dtype, shape: [N, K], ptr, bytes: p8Bytes(N, K, dtype) };
}

function putU16(arena: Arena, v: Uint16Array): number {
  const ptr = arena.allocBytes(Math.max(v.byteLength, 16));
  arena.u8(ptr, v.byteLength).set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return ptr;
}

const u16At = (wasm: Wasm, ptr: number, n: number): Uint16Array => new Uint16Array(wasm.memory.buffer, ptr, n);

/** Copies of a placed panel-CSR weight (f32 values, widened exactly from a half dtype). */
export function readCsr(wasm: Wasm, w: LinearCsr): PackedCsr {
  const [N, K] = w.shape as [number, number];
  const rows = Math.ceil(K / PANEL) * N + 1;
  const vals = w.dtype === "f32" ? wasm.arena.f32(w.vals, w.nnz).slice() : f32Values(u16At(wasm, w.vals, w.nnz), w.dtype);
  return { N, K, rowptr: wasm.arena.u32(w.rowptr, rows).slice(), cols: wasm.arena.u8(w.cols, w.nnz).slice(), vals };
}

/** Copies of a placed 2:4 weight (for tests and decompression; f32 values, widened exactly from a half dtype). */
export function read2of4(wasm: Wasm, w: Linear2of4): Packed24 {
  const [N, K] = w.shape as [number, number];
  const NB = Math.ceil(N / 4);
  const G = K / 4;
  const vals = w.dtype === "f32" ? wasm.arena.f32(w.vals, NB * G * 8).slice() : f32Vals2of4(u16At(wasm, w.vals, NB * G * 8), w.dtype);
  return { N, K, vals, idx: wasm.arena.u8(w.idx, NB * G * 2).slice() };
}

/**
 * The dense values of a weight: a dense one's `data` view, or for a compressed operator (which holds no dense
 * copy) a new array rebuilt bit-exactly from its kernel layout. For inspect, save and decompress, one at a time.
 */
export function denseWeight(wasm: Wasm, t: LinearWeight | { data: Float32Array }): Float32Array {
  if (!("format" in t) || t.format === "dense") return t.data;
  if (t.format === "p8") return unpackP8(wasm.arena.u8(t.ptr, t.bytes), t.shape[0]!, t.shape[1]!, t.dtype);
  if (t.format === "int") return dequantize(readInt(wasm, t));
  return t.format === "2:4" ? unpack2of4(read2of4(wasm, t)) : unpackCsr(readCsr(wasm, t));
}

/** How a linear weight is held, in a word or two: "p8 bf16", "2:4 f32", "int4 g128", "int8 channel", "dense f32". */
export function linearLayout(w: LinearWeight): string {
  if (w.format === "dense") return "dense f32";
  if (w.format === "int") return `int${w.bits}${w.pattern === "2:4" ? " 2:4" : ""} ${w.strategy === "channel" ? "channel" : `g${w.group}`}${w.pattern === "dense" && w.activationBits === 8 ? " a8" : ""}`;
  return `${w.format} ${w.dtype}`;
}

/**
 * Run `model`'s int8 and int4 operators in dense panels on `bits` activations (8: W8A8 / W4A8, i8_quantize_blocks
 * + qu8a8_gemm_nt / qu4a8_gemm_nt; 16: int16), on the same panels, so nothing is re-read or re-placed; the count
 * set, 0 when it has none (operators placed in the 2:4 int4 layout keep int16 activations: a model loaded for
 * int8 activations has its 2:4 int4 operators in dense panels, see placeInt).
 */
export function setIntActivations(model: Pick<Model, "weights">, bits: IntActivationBits): number {
  const w = model.weights;
  let n = 0;
  for (const t of [...w.layers.flatMap((lw) => LINEAR_OPS.map((op) => lw[op])), w.lmHead]) {
    if (t.format === "int" && t.pattern === "dense") {
      t.activationBits = bits;
      n++;
    }
  }
  return n;
}

/** The layouts of a model's linear weights (LM head included) with their counts, and their bytes in memory. */
export function linearLayouts(model: Model): { layouts: Record<string, number>; bytes: number } {
  const layouts: Record<string, number> = {};
  let bytes = 0;
  const w = model.weights;
  const all = [...w.layers.flatMap((lw) => LINEAR_OPS.map((op) => lw[op])), w.lmHead];
  for (const t of all) {
    const l = linearLayout(t);
    layouts[l] = (layouts[l] ?? 0) + 1;
    bytes += t.format === "dense" ? 4 * t.data.length : t.bytes;
  }
  return { layouts, bytes };
}

/** A decoder layer whose linear weights are all dense (what pruning, training and structured pruning edit). */
export type DenseLayer = Omit<LayerWeights, LinearOp> & Record<LinearOp, DenseLinear>;

/** `lw` with every linear weight dense, or a UsageError naming the first compressed one (layer `l`). */
export function denseLayer(lw: LayerWeights, l: number): DenseLayer {
  for (const op of LINEAR_OPS) denseLinear(lw[op], `model.layers.${l}.${HF_LINEAR_NAMES[op]}.weight`);
  return lw as DenseLayer;
}

/**
 * `w` in the layout the inference kernels read, values in `dtype`: dense → p8 panels, 2:4 and CSR with their
 * values converted. New arena blocks (the old ones stay allocated): for models built in memory (builtin,
 * synthetic, tests); a model read from disk is packed as it is read (`loadModel` with `weights`).
 */
export function packLinear(wasm: Wasm, w: LinearWeight, dtype: WeightDType, to: Wasm = wasm): LinearWeight {
  const [N, K] = w.shape as [number, number];
  if (w.slorb && to !== wasm) throw new UsageError("packLinear: a SLoRB weight is packed only within its own memory");
  const slorb = w.slorb ? { slorb: w.slorb } : {};
  if (w.format === "dense" || w.format === "p8") return { ...placeP8(to.arena, packP8(denseWeight(wasm, w), N, K, dtype), N, K, dtype), ...slorb };
  if (w.format === "2:4") return { ...place2of4(to.arena, read2of4(wasm, w), dtype), ...slorb };
  if (w.format === "int") return { ...placeQuantized(to, readInt(wasm, w), w.pattern === "dense" ? w.activationBits : 16), ...slorb };
  return { ...placeCsr(to.arena, readCsr(wasm, w), dtype), ...slorb };
}

/**
 * A copy of `model` on another instance `to`, its linear weights packed for inference in `dtype` (norms and the
 * embedding copied; a tied LM head stays the copied embedding): a big in-memory model packed without holding
 * both layouts in one 4 GiB memory (bench model).
 */
export function packedCopy(model: Model, to: Wasm, dtype: WeightDType): Model {
  const a = to.arena;
  const copy = (t: Tensor): Tensor => {
    const ptr = a.put(t.data);
    return { ptr, shape: t.shape, data: a.f32(ptr, t.data.length) };
  };
  const w = model.weights;
  const embed = copy(w.embed);
  const layers = w.layers.map((lw) => {
    const out = { ...lw, attnNorm: copy(lw.attnNorm), ffnNorm: copy(lw.ffnNorm) } as LayerWeights;
    for (const b of ["bq", "bk", "bv"] as const) if (lw[b]) out[b] = copy(lw[b]!);
    for (const op of LINEAR_OPS) out[op] = packLinear(model.wasm, lw[op], dtype, to);
    return out;
  });
  const tied = w.lmHead.format === "dense" && w.lmHead.ptr === w.embed.ptr;
  const lmHead = tied ? dense(embed) : packLinear(model.wasm, w.lmHead, dtype, to);
  return { ...model, wasm: to, weights: { embed, layers, norm: copy(w.norm), lmHead }, backend: undefined };
}

/** Every linear weight of `model` packed for inference (packLinear), in place; a tied LM head stays the embedding. */
export function packModel(model: Model, dtype: WeightDType): void {
  const w = model.weights;
  const pack = (t: LinearWeight, name: string): LinearWeight => {
    try {
      return packLinear(model.wasm, t, dtype);
    } catch (e) {
      if (e instanceof NotFiniteInF16) throw new UsageError(`${name}: a weight ${e.message}; use bf16 or f32`);
      throw e;
    }
  };
  w.layers.forEach((lw, l) => {
    for (const op of LINEAR_OPS) lw[op] = pack(lw[op], `model.layers.${l}.${HF_LINEAR_NAMES[op]}.weight`);
  });
  if (w.lmHead.format !== "dense" || w.lmHead.ptr !== w.embed.ptr) w.lmHead = pack(w.lmHead, "lm_head.weight");
}
