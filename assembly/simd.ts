// Shared SIMD helpers of the inference kernels: multiply-add and in-range swizzles that become FMA and a bare
// pshufb/tbl in the relaxed-SIMD build (build/kernels-relaxed.wasm, compiled from the same sources with
// `--enable relaxed-simd`; src/wasm/runtime.ts picks it when the runtime validates it), and the widening of
// half-precision weights to f32 lanes (the kernels read bf16/f16 weights and accumulate in f32).
//
// Weight storage types are generic markers of the kernels that read weights: f32 = float32, u16 = bfloat16,
// i16 = IEEE binary16 (f16). Only the inference kernels (GEMV, packed GEMM, 2:4 and CSR) use `madd`; the
// pruning kernels (f32_gemm_nt, the Gram, FISTA) keep mul + add in both builds, so pruning results do not
// depend on the build.

/** (l0 + l1) + (l2 + l3) of an f32x4: the one horizontal-sum order of every kernel that reduces lanes. */
// @ts-ignore: decorator
@inline
export function hsum4(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** c + a·b: fused (one rounding) in the relaxed build, mul then add (two roundings) in the baseline. */
// @ts-ignore: decorator
@inline
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/** i8x16.swizzle for masks whose every byte is in 0..15 (the result is then the same in both builds). */
// @ts-ignore: decorator
@inline
export function swizzleInRange(a: v128, s: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i8x16.relaxed_swizzle(a, s);
  return i8x16.swizzle(a, s);
}

/**
 * f32 lanes of f16 bits held in the upper 16 bits of each u32 lane (whatever the lower 16 bits hold): exact for
 * every finite f16, ±0 and subnormals included, in three ops. The arithmetic shift right by 3 moves exponent and
 * mantissa to f32's places (bits 27..13) and copies the sign into bits 31..28; the mask keeps bit 31 (the sign)
 * and bits 27..13, clearing what the lower half shifted in; the multiply by 2^112 rebiases the exponent (f16
 * subnormals land on f32 normals: exact; the sign rides along). Inf and NaN would read as finite values ≥ 65536
 * in magnitude: packing refuses f16 weights that are not finite (src/model/packed.ts), so the kernels never
 * see them. The mask and the multiplier are loaded from static data, not written as constants: Node 24's V8
 * rebuilds a v128 constant at every use inside a loop (the f16 p8 GEMV over 512 MiB of copies, interleaved: 10.1–12.3
 * GB/s with constants, 16.8–17.8 loaded; Node 20 14.7 / 15.1).
 */
// @ts-ignore: decorator
@inline
export function f16TopToF32(v: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shr_s(v, 3), v128.load(F16_WIDEN)), v128.load(F16_WIDEN, 16));
}

/** f16TopToF32's mask (sign and bits 27..13) and its multiplier 2^112 (f32 bits 0x77800000), four lanes each. */
const F16_WIDEN: usize = memory.data<u32>([0x8fffe000, 0x8fffe000, 0x8fffe000, 0x8fffe000, 0x77800000, 0x77800000, 0x77800000, 0x77800000], 16);

/** Lanes 0..3 of 8 halves packed as [e0 e4 e1 e5 e2 e6 e3 e7]: the even 16-bit elements of `h`, as f32. */
// @ts-ignore: decorator
@inline
export function halfEven<D>(h: v128): v128 {
  if (isSigned<D>()) return f16TopToF32(i32x4.shl(h, 16));
  return i32x4.shl(h, 16);
}

/**
 * The odd 16-bit elements of `h` as f32 (see halfEven). bf16: the same bits by a mask or by two shifts; the
 * relaxed build shifts (Node 24, bf16 p8 GEMV over 512 MiB of copies, interleaved: 21.1–22.3 GB/s masked,
 * 25.4–25.9 shifted), the baseline build masks (Node 20: 23.0 masked, 19.0 shifted; Node 24 19.8 / 19.0).
 */
// @ts-ignore: decorator
@inline
export function halfOdd<D>(h: v128): v128 {
  if (isSigned<D>()) return f16TopToF32(h);
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.shl(i32x4.shr_u(h, 16), 16);
  return v128.and(h, i32x4.splat(0xffff0000));
}

/** The f32 value of one stored weight at p (D: f32, u16 = bf16, i16 = f16). */
// @ts-ignore: decorator
@inline
export function loadWeight<D>(p: usize): f32 {
  if (isFloat<D>()) return load<f32>(p);
  const h = <u32>load<u16>(p);
  if (!isSigned<D>()) return reinterpret<f32>(h << 16);
  return f16ToF32(h);
}

/** The f32 value of finite f16 bits (the scalar f16TopToF32). */
// @ts-ignore: decorator
@inline
export function f16ToF32(h: u32): f32 {
  return reinterpret<f32>(<u32>(<i32>(h << 16) >> 3) & 0x8fffe000) * <f32>5.192296858534828e33;
}

// ---- p8 panels (assembly/gemv.ts describes the layout) ----

/** Rows 0..3 of the k slice at wp + off·(sizeof<D>/2) (off 0: this k, 16: the next; a half slice is 16 bytes, an f32 one 32). */
// @ts-ignore: decorator
@inline
export function rows0123<D>(wp: usize, off: usize): v128 {
  if (isFloat<D>()) return v128.load(wp + (off << 1));
  return halfEven<D>(v128.load(wp + off));
}

// @ts-ignore: decorator
@inline
export function rows4567<D>(wp: usize, off: usize): v128 {
  if (isFloat<D>()) return v128.load(wp + (off << 1) + 16);
  return halfOdd<D>(v128.load(wp + off));
}

/** Bytes of one k slice of a panel (8 weights). */
// @ts-ignore: decorator
@inline
export function sliceBytes<D>(): usize {
  return <usize>sizeof<D>() << 3;
}
