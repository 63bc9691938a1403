/**
 * @file The stored dtypes of safetensors files and their sizes; float widening/narrowing between the float
 * dtypes (F32, F16, BF16) and float32; little-endian I64 encoding.
 * Widening is exact; narrowing rounds to nearest, ties to even (as torch's `.half()` / `.bfloat16()`),
 * keeps NaN a (quiet) NaN and overflows to ±Inf.
 */

/** The float dtypes a model weight may be stored in (read as float32). */
export const DTYPES = Object.freeze(["F32", "F16", "BF16"] as const);
export type DType = (typeof DTYPES)[number];

/**
 * Bytes per element of every dtype the reader and writer handle: the float dtypes model weights may have
 * (DType: F32, F16, BF16, readable as float32) and raw ones (integers, bools, F64) that other tensors of a
 * checkpoint may have, e.g. the U8 bitmasks and I64 shapes of a compressed one, read as their bytes.
 */
export const DTYPE_SIZE = Object.freeze({
  F32: 4, F16: 2, BF16: 2,
  F64: 8, BOOL: 1, U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4, U64: 8, I64: 8,
} as const);
export type StoredDType = keyof typeof DTYPE_SIZE;
export const STORED_DTYPES: readonly StoredDType[] = Object.freeze(Object.keys(DTYPE_SIZE) as StoredDType[]);

export function isStoredDType(d: string): d is StoredDType {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, d);
}

/** Number of elements of a tensor of `shape` (1 for a scalar, []). */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A dtype readable as float32 (a model weight's dtype). */
export function isFloatDType(d: string): d is DType {
  return d === "F32" || d === "F16" || d === "BF16";
}

/** Every dtype name the safetensors format defines (so "unsupported" can be told apart from "unknown"). */
export const SAFETENSORS_DTYPES: ReadonlySet<string> = new Set([
  "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
  "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64", "C64",
]);

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

let f16Table: Float32Array | undefined;
/** float32 value of every f16 bit pattern (256 KiB, built on first use). */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** f16 bits of float32 `x`, rounded to nearest even. */
export function f32ToF16Bits(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 | (man >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal f16 (or zero): shift the full significand right
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e; // 24-bit significand -> 10-bit subnormal
    const half = 1 << (shift - 1);
    const rest = man & ((1 << shift) - 1);
    let r = man >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r; // a carry into the exponent field yields the smallest normal, which is right
  }
  let r = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // may carry into exp, up to Inf: right
  return sign | r;
}

export function bf16BitsToF32(h: number): number {
  u32buf[0] = h << 16;
  return f32buf[0]!;
}

/** bf16 bits of float32 `x`, rounded to nearest even. */
export function f32ToBf16Bits(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return ((b >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Widen `n` little-endian 16-bit values of `dtype` from `src` into `dst[0..n)`. */
export function widen16(dtype: "F16" | "BF16", src: Uint8Array, dst: Float32Array, n: number): void {
  const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
  if (dtype === "F16") {
    const t = f16ToF32Table();
    for (let i = 0; i < n; i++) dst[i] = t[u16[i]!]!;
  } else {
    const u32 = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) u32[i] = u16[i]! << 16;
  }
}

/** Narrow `src` to little-endian 16-bit `dtype` values into `dst` (2 * src.length bytes). */
export function narrow16(dtype: "F16" | "BF16", src: Float32Array, dst: Uint8Array): void {
  const u16 = new Uint16Array(dst.buffer, dst.byteOffset, src.length);
  const f = dtype === "F16" ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < src.length; i++) u16[i] = f(src[i]!);
}

/** Float32 values as the stored bytes of a float `dtype` (F32 is a view; F16/BF16 are narrowed, exact for widened values). */
export function encodeFloats(data: Float32Array, dtype: DType): Uint8Array {
  if (dtype === "F32") return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 2);
  narrow16(dtype, data, out);
  return out;
}

/** Integers (safe, any sign) as little-endian I64 bytes. */
export function encodeI64(values: ArrayLike<number>): Uint8Array {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]!);
  return new Uint8Array(out.buffer);
}

/** Little-endian I64 bytes as numbers; undefined if one is not a safe integer. */
export function decodeI64(bytes: Uint8Array): number[] | undefined {
  const v = new BigInt64Array(bytes.slice().buffer, 0, bytes.length >> 3);
  const out: number[] = [];
  for (const b of v) {
    const n = Number(b);
    if (!Number.isSafeInteger(n)) return undefined;
    out.push(n);
  }
  return out;
}

/**
 * The narrowest float dtype that holds every value of `data` exactly (bit for bit once widened back): BF16 when
 * every value's low 16 bits are zero (widened bf16), else F16 when every value round-trips through f16, else F32.
 * Exact by construction, so a file of widened bf16/f16 weights can be stored at half the bytes without loss.
 */
export function exactDtype(data: Float32Array): "BF16" | "F16" | "F32" {
  const u = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let bf16 = true;
  for (let i = 0; i < u.length; i++) {
    // NaNs stay F32: narrowing quiets them
    if ((u[i]! & 0xffff) !== 0 || ((u[i]! & 0x7f800000) === 0x7f800000 && (u[i]! & 0x7fffff) !== 0)) {
      bf16 = false;
      break;
    }
  }
  if (bf16) return "BF16";
  // f16: in chunks (the first small, so an f32 tensor is told at once), stopping at the first value that differs
  const bytes = new Uint8Array(2 << 16);
  const back = new Float32Array(1 << 16);
  const bu = new Uint32Array(back.buffer);
  for (let i = 0, n = 4096; i < data.length; i += n, n = 1 << 16) {
    const part = data.subarray(i, Math.min(data.length, i + n));
    narrow16("F16", part, bytes);
    widen16("F16", bytes, back, part.length);
    for (let j = 0; j < part.length; j++) if (bu[j] !== u[i + j]) return "F32";
  }
  return "F16";
}
