/**
 * @file Weights as the inference kernels read them, packed once at load: dense linear weights as p8 panels
 * (assembly/gemv.ts: ceil(N/8) panels of 8 rows, K-major) in f32, bf16 or f16, and the values of 2:4 and CSR
 * operators in half precision (assembly/spmm-nm.ts, spmm-csr.ts). Exact conversions both ways: a half dtype
 * keeps a value's bits when it came from that dtype (widening is exact), else rounds to nearest even
 * (src/io/dtype.ts) — that rounding is the only numeric change of `--weights-dtype` against f32.
 */
import { f32ToBf16Bits, f32ToF16Bits, bf16BitsToF32, f16BitsToF32 } from "../io/dtype.js";
import type { WeightDType } from "./types.js";

/** Bytes of one value of `dtype` in memory. */
export const weightBytes = (dtype: WeightDType): number => (dtype === "f32" ? 4 : 2);

/** Row of the panel each 16-bit slot of a half-precision k slice holds (f32 slices are in row order). */
export const HALF_SLOT_ROWS = Object.freeze([0, 4, 1, 5, 2, 6, 3, 7] as const);
/** Slot of each row of a panel in a half-precision k slice (the inverse of HALF_SLOT_ROWS). */
const HALF_ROW_SLOT = [0, 2, 4, 6, 1, 3, 5, 7] as const;

/** Bytes of an [N,K] weight packed as p8 panels of `dtype`. */
export function p8Bytes(N: number, K: number, dtype: WeightDType): number {
  return Math.ceil(N / 8) * K * 8 * weightBytes(dtype);
}

/**
 * A value that f16 cannot hold (Inf, NaN, or |x| > 65504, which rounds to Inf): the f16 kernels widen finite
 * values only (assembly/simd.ts f16TopToF32), so packing refuses it; readers add the tensor's name.
 */
export class NotFiniteInF16 extends RangeError {
  constructor(readonly value: number) {
    super(`${value} is not a finite f16 value (f16 holds |x| ≤ 65504)`);
  }
}

function f16Finite(x: number): number {
  const h = f32ToF16Bits(x);
  if ((h & 0x7c00) === 0x7c00) throw new NotFiniteInF16(x);
  return h;
}

const narrow = (dtype: "bf16" | "f16"): ((x: number) => number) => (dtype === "bf16" ? f32ToBf16Bits : f16Finite);
const widen = (dtype: "bf16" | "f16"): ((h: number) => number) => (dtype === "bf16" ? bf16BitsToF32 : f16BitsToF32);

/**
 * Pack `rows` (≤ 8) row-major rows of K values (`src`, rows·K) as panel `panel` of `dst` (the whole packed
 * weight's bytes); rows past `rows` are zero (dst must be zeroed or freshly allocated for them).
 */
export function packPanel(src: Float32Array, rows: number, K: number, dtype: WeightDType, dst: Uint8Array, panel: number): void {
  const base = panel * K * 8;
  if (dtype === "f32") {
    // moved as bits (u32), so every value, NaN payloads too, is kept exactly; padding rows are +0.0
    const out = new Uint32Array(dst.buffer, dst.byteOffset + 4 * base, K * 8);
    const bits = new Uint32Array(src.buffer, src.byteOffset, rows * K);
    out.fill(0);
    for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) out[k * 8 + r] = bits[r * K + k]!;
    return;
  }
  const out = new Uint16Array(dst.buffer, dst.byteOffset + 2 * base, K * 8);
  out.fill(0);
  const f = narrow(dtype);
  for (let r = 0; r < rows; r++) {
    const s = HALF_ROW_SLOT[r]!;
    for (let k = 0; k < K; k++) out[k * 8 + s] = f(src[r * K + k]!);
  }
}

/** Dense row-major W [N,K] → p8 panels of `dtype` (a new buffer). */
export function packP8(w: Float32Array, N: number, K: number, dtype: WeightDType): Uint8Array {
  const out = new Uint8Array(p8Bytes(N, K, dtype));
  for (let p = 0; p * 8 < N; p++) {
    const rows = Math.min(8, N - 8 * p);
    packPanel(w.subarray(8 * p * K, (8 * p + rows) * K), rows, K, dtype, out, p);
  }
  return out;
}

/** p8 panels of `dtype` → dense row-major f32 W [N,K] (exact: widening). */
export function unpackP8(bytes: Uint8Array, N: number, K: number, dtype: WeightDType): Float32Array {
  const out = new Float32Array(N * K);
  if (dtype === "f32") {
    const v = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const o = new Uint32Array(out.buffer);
    for (let n = 0; n < N; n++) {
      const p = n >> 3, r = n & 7;
      for (let k = 0; k < K; k++) o[n * K + k] = v[(p * K + k) * 8 + r]!;
    }
    return out;
  }
  const v = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  const f = widen(dtype);
  for (let n = 0; n < N; n++) {
    const p = n >> 3, s = HALF_ROW_SLOT[n & 7]!;
    for (let k = 0; k < K; k++) out[n * K + k] = f(v[(p * K + k) * 8 + s]!);
  }
  return out;
}

/**
 * The 2:4 "4x" values (f32 [NB][G][2][4]) in half precision: u16 [NB][G][4][2] (row r's pair s = 0, 1 together,
 * see assembly/spmm-nm.ts).
 */
export function halfVals2of4(vals: Float32Array, dtype: "bf16" | "f16"): Uint16Array {
  const out = new Uint16Array(vals.length);
  const f = narrow(dtype);
  for (let g = 0; g < vals.length; g += 8) {
    for (let r = 0; r < 4; r++) {
      out[g + 2 * r] = f(vals[g + r]!);
      out[g + 2 * r + 1] = f(vals[g + 4 + r]!);
    }
  }
  return out;
}

/** Inverse of halfVals2of4 (exact). */
export function f32Vals2of4(half: Uint16Array, dtype: "bf16" | "f16"): Float32Array {
  const out = new Float32Array(half.length);
  const f = widen(dtype);
  for (let g = 0; g < half.length; g += 8) {
    for (let r = 0; r < 4; r++) {
      out[g + r] = f(half[g + 2 * r]!);
      out[g + 4 + r] = f(half[g + 2 * r + 1]!);
    }
  }
  return out;
}

/** f32 values → `dtype` bits, element by element (CSR values). */
export function halfValues(v: Float32Array, dtype: "bf16" | "f16"): Uint16Array {
  const out = new Uint16Array(v.length);
  const f = narrow(dtype);
  for (let i = 0; i < v.length; i++) out[i] = f(v[i]!);
  return out;
}

/** Inverse of halfValues (exact). */
export function f32Values(h: Uint16Array, dtype: "bf16" | "f16"): Float32Array {
  const out = new Float32Array(h.length);
  const f = widen(dtype);
  for (let i = 0; i < h.length; i++) out[i] = f(h[i]!);
  return out;
}
