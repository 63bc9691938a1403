// Integer-weight GEMV/GEMM of quantized linear weights (compressed-tensors pack-quantized, src/quant): y[T,N] =
// x[T,K] · Wᵀ with W ≈ (u − o)·s, u the stored unsigned code (int8: q + 128; int4: q + 8), o = that offset plus
// the zero point, s a scale per row and group of inputs.
//
// The codes are those of the file (int8 one byte per input, int4 two per byte: input 2j in the low nibble of
// byte j, 2j+1 in the high one, as pack_to_int32 writes them on a little-endian machine), interleaved once at
// load into panels of 4 rows (src/model/linear.ts placeInt): [ceil(N/4)][Kp/32][4 rows][32 inputs' bytes], so a GEMV reads one
// sequential stream (four row streams of 2–4 KB each restart the prefetchers every 4-row tile, and a page-sized
// stream never trains them: measured, int8 4096² at 12.7 GB/s row-major). Rows past N and inputs past K are
// zero codes. The activations are first rounded to int16 in blocks of
// B inputs (i16_quantize_blocks: one scale per block, sx = max|x| / 32767, so each value is off by at most
// sx/2 — 2^-16 of its block's largest magnitude), then every block of a row is one exact integer dot product
// (i32x4.dot_i16x8_s: 8 multiply-adds per instruction, no rounding), and the blocks are summed in f32:
//   y[t,n] = Σ_b sx[t,b]·s[n,g(b)]·D[n,b] − Σ_b c[n,g(b)]·(sx[t,b]·S[t,b]),   c = s·o (precomputed at load when
//   there is a zero point; else s·2^(bits−1), exact),
// D[n,b] = Σ_{k∈b} u[n,k]·xq[t,k] (i32, exact), S[t,b] = Σ_{k∈b} xq[t,k]. B is the group size (32, 64 or 128:
// the integer sums stay below 2^31: 128·255·32767 < 2^31), or 128 for a per-channel scale; K is padded to a
// multiple of B with zero activations.
//
// Summation order (deterministic): per (t, n), lane j of the f32 accumulator holds Σ over blocks of the block
// sums' lane j, in block order; reduced (a0+a1)+(a2+a3), then the offset terms, summed in block order, are
// subtracted. The four rows of a panel share each activation load.
//
// int8 or int4 with int8 activations (qu8a8_gemm_nt, qu4a8_gemm_nt: W8A8 and W4A8, as ggml runs its quantized
// weights against 8-bit activations; int8 codes enter the i8 dot as their two nibbles, summed apart, the high
// one's sum weighed by 16):
// i8_quantize_blocks rounds each block to int8 values (sx = max|x| / 127, so each value is off by at most sx/2 —
// 2^-8 of its block's largest magnitude); the same formula for y, on the same panels. In the relaxed build one
// i32x4.relaxed_dot_i8x16_i7x16_add_s of 16 int8 activations with 16 codes (0..15, the i7 operand) makes 16
// multiply-adds (exact: no i16 pair sum can saturate, 127·15·2 < 2^15); the baseline build has no i8 dot, so it
// holds the int8 values as int16 and runs the int4 kernel's int16 path. Both put inputs 8i..8i+7 of every 32 in
// i32 lane i, and the integer sums are exact, so both builds give the same bytes.

import { hsum4, swizzleInRange } from "./simd";
import { QM_TABLE } from "./tables";

/** K padded to a multiple of the block B. */
// @ts-ignore: decorator
@inline
function paddedK(K: i32, B: i32): i32 {
  return (K + B - 1) / B * B;
}

/** Bytes of scratch the q*_gemm_nt kernels need for T positions of K inputs in blocks of B (xq + block scales). */
export function q_gemm_nt_scratch(T: i32, K: i32, B: i32): i32 {
  assert(B == 32 || B == 64 || B == 128, "q_gemm_nt_scratch: block must be 32, 64 or 128");
  const Kp = paddedK(K, B);
  return T * Kp * 2 + T * (Kp / B) * 8;
}

/**
 * Round x[T,K] to int16 (qmax 32767) or int8 (127) values in blocks of B inputs: xq, T rows of 2·Kp bytes (Kp =
 * K padded to B, zeros past K) holding esz-byte elements, each block's inputs at the places `order` gives them; xs f32 [T][Kp/B][2] = (sx, sx·S) per block,
 * sx = max|x| / qmax, S the sum of the block's rounded values.
 */
// @ts-ignore: decorator
@inline
function quantizeBlocks(qmax: i32, esz: usize, x: usize, T: i32, K: i32, B: i32, order: i32, xq: usize, xs: usize): void {
  const Kp = paddedK(K, B);
  const nb = Kp / B;
  const fmax = <f32>qmax;
  for (let t = 0; t < T; t++) {
    const xt = x + <usize>t * <usize>K * 4;
    const qt = xq + <usize>t * <usize>Kp * 2;
    for (let b = 0; b < nb; b++) {
      const k0 = b * B;
      const k1 = min(K, k0 + B);
      let m: f32 = 0;
      for (let k = k0; k < k1; k++) m = max(m, abs(load<f32>(xt + (<usize>k << 2))));
      const inv: f32 = m > 0 ? fmax / m : 0;
      let S: i32 = 0;
      for (let j = 0; j < B; j++) {
        const k = k0 + j;
        let v: f32 = k < K ? nearest(load<f32>(xt + (<usize>k << 2)) * inv) : 0;
        if (!(v == v)) v = 0; // NaN activations: sx is NaN too, so the outputs are NaN
        v = min(fmax, max(-fmax, v));
        const q = <i32>v;
        S += q;
        // the order the kernels' lane split yields: int8 codes, per 16 inputs, the even ones then the odd ones;
        // int4, per 32 inputs, those ≡ 0 (mod 4), then ≡ 1, ≡ 2, ≡ 3; the 2:4 kernel, as they come; int4 on int8
        // activations (order 3), per 32 inputs, the even ones then the odd ones; int8 on int8 activations
        // (order 4), as they come, split into max(q, 0) in the row's first Kp bytes and max(−q, 0) in its second
        const p = order == 3 ? (j & ~31) + ((j & 1) << 4) + ((j & 31) >> 1)
          : order >= 2 ? j : order == 1 ? (j & ~31) + ((j & 3) << 3) + ((j & 31) >> 2) : (j & ~15) + ((j & 1) << 3) + ((j & 15) >> 1);
        if (order == 4) {
          store<i8>(qt + <usize>(k0 + p), <i8>max(q, 0));
          store<i8>(qt + <usize>(Kp + k0 + p), <i8>max(-q, 0));
        } else if (esz == 1) store<i8>(qt + <usize>(k0 + p), <i8>q);
        else store<i16>(qt + (<usize>(k0 + p) << 1), <i16>q);
      }
      const sx: f32 = m / fmax;
      const xb = xs + ((<usize>t * <usize>nb + <usize>b) << 3);
      store<f32>(xb, sx);
      store<f32>(xb, sx * <f32>S, 4);
    }
  }
}

/**
 * Round x[T,K] to int16 in blocks of B inputs: xq i16 [T][Kp] (Kp = K padded to B, zeros past K), xs f32
 * [T][Kp/B][2] = (sx, sx·S) per block, each block's inputs in the order `order` says: the lane split of the
 * int8 kernel (0), of the int4 kernel (1), or the inputs' own order (2: the 2:4 int4 kernel gathers them).
 */
export function i16_quantize_blocks(x: usize, T: i32, K: i32, B: i32, order: i32, xq: usize, xs: usize): void {
  assert(T >= 0 && K >= 0, "i16_quantize_blocks: negative size");
  assert(B == 32 || B == 64 || B == 128, "i16_quantize_blocks: block must be 32, 64 or 128");
  assert(order >= 0 && order <= 2, "i16_quantize_blocks: order must be 0, 1 or 2");
  assert((x & 3) == 0 && (xq & 15) == 0 && (xs & 7) == 0, "i16_quantize_blocks: x 4-, xq 16-, xs 8-byte aligned");
  quantizeBlocks(32767, 2, x, T, K, B, order, xq, xs);
}

/**
 * Round x[T,K] to int8 values in blocks of B inputs for qu4a8_gemm_nt (bits 4) or qu8a8_gemm_nt (bits 8), into
 * the scratch of i16_quantize_blocks (q_gemm_nt_scratch: xq T rows of 2·Kp bytes, zeros past K; xs f32
 * [T][Kp/B][2] = (sx, sx·S), sx = max|x| / 127). Relaxed build: i8; for int4 codes per 32 inputs the even ones
 * then the odd ones (the low and the high nibbles of 16 code bytes) in the row's first Kp bytes; for int8 codes
 * max(q, 0) in input order there and max(−q, 0) in the next Kp bytes (both < 128: the i7 operand of the dot,
 * the signed codes the i8 one); baseline: the values as int16 in the order of the int16 kernel of those codes.
 */
export function i8_quantize_blocks(x: usize, T: i32, K: i32, B: i32, bits: i32, xq: usize, xs: usize): void {
  assert(T >= 0 && K >= 0, "i8_quantize_blocks: negative size");
  assert(B == 32 || B == 64 || B == 128, "i8_quantize_blocks: block must be 32, 64 or 128");
  assert(bits == 4 || bits == 8, "i8_quantize_blocks: codes of 4 or 8 bits");
  assert((x & 3) == 0 && (xq & 15) == 0 && (xs & 7) == 0, "i8_quantize_blocks: x 4-, xq 16-, xs 8-byte aligned");
  if (ASC_FEATURE_RELAXED_SIMD) quantizeBlocks(127, 1, x, T, K, B, bits == 4 ? 3 : 4, xq, xs);
  else quantizeBlocks(127, 2, x, T, K, B, bits == 4 ? 1 : 0, xq, xs);
}

// 32 int8 codes of a row at w against 32 activations (x0..x3, in the order of i16_quantize_blocks): i32x4 of
// partial dot products. The codes are split into 16-bit lanes by shifts (cheap ALU ops with immediates; extends
// queue on the shuffle ports, and mask constants cost V8 a materialization per use): of 16 codes, the low
// bytes of the eight u16 lanes are the even codes, the high bytes the odd ones. `signed` (the baseline's int16
// path for W8A8): the codes as q = u XOR 128 (sgn), sign-extended by arithmetic shifts, instead of u.
// @ts-ignore: decorator
@inline
function chunk8(w: usize, signed: bool, sgn: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const v = signed ? v128.xor(v128.load(w), sgn) : v128.load(w);
  const u = signed ? v128.xor(v128.load(w, 16), sgn) : v128.load(w, 16);
  const a = i32x4.add(i32x4.dot_i16x8_s(lowBytes(v, signed), x0), i32x4.dot_i16x8_s(highBytes(v, signed), x1));
  const b = i32x4.add(i32x4.dot_i16x8_s(lowBytes(u, signed), x2), i32x4.dot_i16x8_s(highBytes(u, signed), x3));
  return i32x4.add(a, b);
}

/** The low byte of each u16 lane of h, zero- or (signed) sign-extended. */
// @ts-ignore: decorator
@inline
function lowBytes(h: v128, signed: bool): v128 {
  return signed ? i16x8.shr_s(i16x8.shl(h, 8), 8) : i16x8.shr_u(i16x8.shl(h, 8), 8);
}

/** The high byte of each u16 lane of h, zero- or (signed) sign-extended. */
// @ts-ignore: decorator
@inline
function highBytes(h: v128, signed: bool): v128 {
  return signed ? i16x8.shr_s(h, 8) : i16x8.shr_u(h, 8);
}

// The same for 32 int4 codes (16 bytes): nibble i of the eight u16 lanes holds codes 4j + i.
// @ts-ignore: decorator
@inline
function chunk4(w: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const v = v128.load(w);
  const a = i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(i16x8.shl(v, 12), 12), x0), i32x4.dot_i16x8_s(i16x8.shr_u(i16x8.shl(v, 8), 12), x1));
  const b = i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(i16x8.shl(v, 4), 12), x2), i32x4.dot_i16x8_s(i16x8.shr_u(v, 12), x3));
  return i32x4.add(a, b);
}

// @ts-ignore: decorator
@inline
function chunk(bits: i32, signed: bool, sgn: v128, w: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  return bits == 8 ? chunk8(w, signed, sgn, x0, x1, x2, x3) : chunk4(w, x0, x1, x2, x3);
}

/** The nibble mask 0x0f in every byte, loaded once per call (a v128.const would be materialized at each use). */
const NIBBLES: usize = memory.data<u8>([15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15], 16);

/**
 * c + the dot products of a's 16 int8 lanes with b's 16 lanes in 0..15, lane i summing bytes 4i..4i+3 (relaxed
 * build only; exact, as no i16 pair sum can saturate).
 */
// @ts-ignore: decorator
@inline
function dotI8(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c);
  unreachable(); // the baseline build never calls it (qgemm's dot8 is false there)
  return c;
}

/** The sign bit of every byte, loaded once per call: XORed into a u8 code (q + 128) it gives q as an i8. */
const SIGNS: usize = memory.data<u8>([128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128], 16);

/** d + Σ q·x⁺ of 32 int8 codes of a row at w (32 bytes of u8 = q + 128) against x⁺ (p0, p1: 32 activations ≥ 0). */
// @ts-ignore: decorator
@inline
function chunk8a8(w: usize, p0: v128, p1: v128, sgn: v128, d: v128): v128 {
  return dotI8(v128.xor(v128.load(w, 16), sgn), p1, dotI8(v128.xor(v128.load(w), sgn), p0, d));
}

/** d + 32 int4 codes of a row at w (16 bytes) against 32 int8 activations (xe: the even inputs, xo: the odd). */
// @ts-ignore: decorator
@inline
function chunk4a8(w: usize, xe: v128, xo: v128, nib: v128, d: v128): v128 {
  const v = v128.load(w);
  return dotI8(xo, v128.and(i16x8.shr_u(v, 4), nib), dotI8(xe, v128.and(v, nib), d));
}

// y[T,N] for `bits` 8 or 4 (inlined into one kernel per width so each inner loop is straight-line).
// @ts-ignore: decorator
@inline
function qgemm(bits: i32, a8: bool, xq: usize, xs: usize, w: usize, sc: usize, zc: usize, y: usize, T: i32, N: i32, K: i32, ng: i32, B: i32): void {
  const Kp = paddedK(K, B);
  const nb = Kp / B;
  // the i8 dot (relaxed build only); the baseline runs int8 values held as int16 on the int16 path
  const dot8 = a8 && ASC_FEATURE_RELAXED_SIMD;
  // W8A8 sums q·x (q = u − 128), not u·x: its offset terms are s·z (zero points), none when symmetric
  const signed = a8 && bits == 8;
  // bytes of one position's rounded activations
  const xRow: usize = <usize>Kp * 2;
  const nib = v128.load(NIBBLES);
  const sgn = v128.load(SIGNS);
  // bytes of codes per 32 inputs of a row, of a panel's block and of a panel
  const cb: usize = bits == 8 ? 32 : 16;
  const blockBytes = <usize>B / 32 * cb * 4;
  const panelBytes = <usize>nb * blockBytes;
  const grouped = ng > 1;
  for (let n = 0; n < N; n += 4) {
    const wp = w + <usize>(n >> 2) * panelBytes;
    const s0 = sc + (<usize>n * <usize>ng << 2);
    const s1 = s0 + (<usize>ng << 2);
    const s2 = s1 + (<usize>ng << 2);
    const s3 = s2 + (<usize>ng << 2);
    // the offset terms' c: stored (zero points) or the scale times the code offset (a power of two: exact)
    const cz = zc != 0;
    const c0p = cz ? zc + (<usize>n * <usize>ng << 2) : s0;
    const c1p = c0p + (<usize>ng << 2);
    const c2p = c1p + (<usize>ng << 2);
    const c3p = c2p + (<usize>ng << 2);
    const cm: f32 = cz ? 1 : <f32>(1 << (bits - 1));
    for (let t = 0; t < T; t++) {
      const xt = xq + <usize>t * xRow;
      const xst = xs + <usize>t * <usize>nb * 8;
      let vacc0 = f32x4.splat(0);
      let vacc1 = f32x4.splat(0);
      let vacc2 = f32x4.splat(0);
      let vacc3 = f32x4.splat(0);
      let c0: f32 = 0, c1: f32 = 0, c2: f32 = 0, c3: f32 = 0;
      let wc = wp;
      let xp = xt;
      for (let b = 0; b < nb; b++) {
        let d0 = i32x4.splat(0);
        let d1 = i32x4.splat(0);
        let d2 = i32x4.splat(0);
        let d3 = i32x4.splat(0);
        if (dot8 && bits == 8) {
          // Σ q·x = Σ q·x⁺ − Σ q·x⁻, both sums i8 dots with the signed codes
          let n0 = i32x4.splat(0);
          let n1 = i32x4.splat(0);
          let n2 = i32x4.splat(0);
          let n3 = i32x4.splat(0);
          for (const end = wc + blockBytes; wc < end; wc += 128) {
            const p0 = v128.load(xp);
            const p1 = v128.load(xp, 16);
            const m0 = v128.load(xp + <usize>Kp);
            const m1 = v128.load(xp + <usize>Kp, 16);
            xp += 32;
            d0 = chunk8a8(wc, p0, p1, sgn, d0);
            n0 = chunk8a8(wc, m0, m1, sgn, n0);
            d1 = chunk8a8(wc + 32, p0, p1, sgn, d1);
            n1 = chunk8a8(wc + 32, m0, m1, sgn, n1);
            d2 = chunk8a8(wc + 64, p0, p1, sgn, d2);
            n2 = chunk8a8(wc + 64, m0, m1, sgn, n2);
            d3 = chunk8a8(wc + 96, p0, p1, sgn, d3);
            n3 = chunk8a8(wc + 96, m0, m1, sgn, n3);
          }
          d0 = i32x4.sub(d0, n0);
          d1 = i32x4.sub(d1, n1);
          d2 = i32x4.sub(d2, n2);
          d3 = i32x4.sub(d3, n3);
        } else if (dot8) {
          for (const end = wc + blockBytes; wc < end; wc += 64) {
            const xe = v128.load(xp);
            const xo = v128.load(xp, 16);
            xp += 32;
            d0 = chunk4a8(wc, xe, xo, nib, d0);
            d1 = chunk4a8(wc + 16, xe, xo, nib, d1);
            d2 = chunk4a8(wc + 32, xe, xo, nib, d2);
            d3 = chunk4a8(wc + 48, xe, xo, nib, d3);
          }
        } else for (const end = wc + blockBytes; wc < end; wc += cb * 4) {
          const x0 = v128.load(xp);
          const x1 = v128.load(xp, 16);
          const x2 = v128.load(xp, 32);
          const x3 = v128.load(xp, 48);
          xp += 64;
          d0 = i32x4.add(d0, chunk(bits, signed, sgn, wc, x0, x1, x2, x3));
          d1 = i32x4.add(d1, chunk(bits, signed, sgn, wc + cb, x0, x1, x2, x3));
          d2 = i32x4.add(d2, chunk(bits, signed, sgn, wc + 2 * cb, x0, x1, x2, x3));
          d3 = i32x4.add(d3, chunk(bits, signed, sgn, wc + 3 * cb, x0, x1, x2, x3));
        }
        const sx = load<f32>(xst + (<usize>b << 3));
        const sxS = load<f32>(xst + (<usize>b << 3), 4);
        const go = grouped ? <usize>b << 2 : 0;
        vacc0 = f32x4.add(vacc0, f32x4.mul(f32x4.convert_i32x4_s(d0), f32x4.splat(sx * load<f32>(s0 + go))));
        vacc1 = f32x4.add(vacc1, f32x4.mul(f32x4.convert_i32x4_s(d1), f32x4.splat(sx * load<f32>(s1 + go))));
        vacc2 = f32x4.add(vacc2, f32x4.mul(f32x4.convert_i32x4_s(d2), f32x4.splat(sx * load<f32>(s2 + go))));
        vacc3 = f32x4.add(vacc3, f32x4.mul(f32x4.convert_i32x4_s(d3), f32x4.splat(sx * load<f32>(s3 + go))));
        if (!signed) {
          c0 += load<f32>(c0p + go) * cm * sxS;
          c1 += load<f32>(c1p + go) * cm * sxS;
          c2 += load<f32>(c2p + go) * cm * sxS;
          c3 += load<f32>(c3p + go) * cm * sxS;
        } else if (cz) {
          // s·z = s·(128 + z) − 128·s (the stored term less the offset the signed codes dropped)
          c0 += (load<f32>(c0p + go) - <f32>128 * load<f32>(s0 + go)) * sxS;
          c1 += (load<f32>(c1p + go) - <f32>128 * load<f32>(s1 + go)) * sxS;
          c2 += (load<f32>(c2p + go) - <f32>128 * load<f32>(s2 + go)) * sxS;
          c3 += (load<f32>(c3p + go) - <f32>128 * load<f32>(s3 + go)) * sxS;
        }
      }
      const yo = y + ((<usize>t * <usize>N + <usize>n) << 2);
      const rows = N - n;
      store<f32>(yo, hsum4(vacc0) - c0);
      if (rows > 1) store<f32>(yo, hsum4(vacc1) - c1, 4);
      if (rows > 2) store<f32>(yo, hsum4(vacc2) - c2, 8);
      if (rows > 3) store<f32>(yo, hsum4(vacc3) - c3, 12);
    }
  }
}

// @ts-ignore: decorator
@inline
function checkArgs(name: string, T: i32, N: i32, K: i32, ng: i32, B: i32, xq: usize, xs: usize, sc: usize, zc: usize, y: usize): void {
  assert(T >= 0 && N >= 0 && K >= 0 && ng >= 1, name);
  assert(B == 32 || B == 64 || B == 128, "q*_gemm_nt: block must be 32, 64 or 128");
  assert(ng == 1 || K == ng * B, "q*_gemm_nt: grouped scales need one block per group (B = K / ng)");
  assert((xq & 15) == 0 && (xs & 7) == 0 && ((sc | zc | y) & 3) == 0, "q*_gemm_nt: xq 16-, xs 8-, sc/zc/y 4-byte aligned");
}

/**
 * y[T,N] = x·Wᵀ for int8 codes W in panels, from x rounded by i16_quantize_blocks (xq, xs, block B), the scales
 * sc f32 [ceil(N/4)·4][ng] (zero past row N) and, with zero points, zc of the same shape = s·(128 + zero point)
 * (zc = 0: symmetric).
 */
export function qu8_gemm_nt(xq: usize, xs: usize, w: usize, sc: usize, zc: usize, y: usize, T: i32, N: i32, K: i32, ng: i32, B: i32): void {
  checkArgs("qu8_gemm_nt: negative size", T, N, K, ng, B, xq, xs, sc, zc, y);
  qgemm(8, false, xq, xs, w, sc, zc, y, T, N, K, ng, B);
}

/** The same for int4 codes (two per byte, low nibble first); zc = s·(8 + zero point); xq in int4 order. */
export function qu4_gemm_nt(xq: usize, xs: usize, w: usize, sc: usize, zc: usize, y: usize, T: i32, N: i32, K: i32, ng: i32, B: i32): void {
  checkArgs("qu4_gemm_nt: negative size", T, N, K, ng, B, xq, xs, sc, zc, y);
  qgemm(4, false, xq, xs, w, sc, zc, y, T, N, K, ng, B);
}

/** qu8_gemm_nt's int8 panels against activations rounded to int8 by i8_quantize_blocks for 8-bit codes (W8A8). */
export function qu8a8_gemm_nt(xq: usize, xs: usize, w: usize, sc: usize, zc: usize, y: usize, T: i32, N: i32, K: i32, ng: i32, B: i32): void {
  checkArgs("qu8a8_gemm_nt: negative size", T, N, K, ng, B, xq, xs, sc, zc, y);
  qgemm(8, true, xq, xs, w, sc, zc, y, T, N, K, ng, B);
}

/** The same int4 panels against activations rounded to int8 by i8_quantize_blocks (xq, xs, block B). */
export function qu4a8_gemm_nt(xq: usize, xs: usize, w: usize, sc: usize, zc: usize, y: usize, T: i32, N: i32, K: i32, ng: i32, B: i32): void {
  checkArgs("qu4a8_gemm_nt: negative size", T, N, K, ng, B, xq, xs, sc, zc, y);
  qgemm(4, true, xq, xs, w, sc, zc, y, T, N, K, ng, B);
}

// ---- 2:4-sparse int4: qu4_gemm_2of4_nt ----------------------------------------------------------------------
// The kept half of a 2:4 int4 weight, packed with its positions (src/model/linear.ts place2of4Int builds it):
// W [N,K], K padded to Kp (a multiple of the block B) with empty groups, NB = ceil(N/4) blocks of 4 rows
// (padding rows: zero codes), groups of 4 inputs:
//   codes u16 [NB][Kp/16][8]: the 4 groups of a 16-input chunk; u16 j holds code j of group g in bits 4g..4g+3
//         (so two i16 shifts sign-extend a group's 8 codes into lanes, no shuffles). Code j is row j >> 1's
//         (j & 1)-th kept weight (the lower input first), q as a 4-bit two's complement (−8..7).
//   idx u8 [NB][Kp/4][2]: per group, byte 0 for rows 0 and 1, byte 1 for rows 2 and 3; per row 4 bits, the
//         positions in the group of its two kept inputs (bits 0–1 the first, 2–3 the second).
//   sc f32 [NB][ng][4]: the 4 rows' scales of each group; zp i16 [NB][ng][8]: each row's zero point twice
//         (zp = 0: symmetric).
// 16 weights of a 4-row group take 4 bytes of codes and 2 of positions: 3 bits a weight, plus the scales.
//
// Per group, two table loads turn its 2 position bytes into an i8x16.swizzle mask (QM, assembly/tables.ts: 2 × 256 ×
// 8 bytes, the second half for a group held in the high 8 bytes of a v128 of activations; two 16-byte tables ORed
// ran 25% slower), so one swizzle of 8 int16
// activations gathers row r's two inputs into i16 lanes 2r, 2r+1, and one i32x4.dot_i16x8_s with the 8 codes
// (widened to i16, less the zero point) gives the 4 rows' exact products in i32 lanes 0..3. x comes from
// i16_quantize_blocks in order 2 (the inputs' own order); per block b of B inputs:
//   y[t,n] += f32(D[n,b]) · (sx[t,b] · s[n,g(b)]),   D[n,b] = Σ_{kept k ∈ b} (q − z)[n,k]·xq[t,k] (i32, exact),
// summed in block order from 0 — the same arithmetic for every position whatever the tiling (4 positions share
// each group's decoded codes and masks), so any split over positions or rows gives the same bytes.
const QM = QM_TABLE;

/**
 * Build the 2:4 int4 layout above from pack-quantized int4 words (the file's: N rows of ceil(K/8) u32, input c in
 * bits 4·(c mod 8) of word c/8 as u = q + 8) and the zero points zp i8 [N][ng] (0: symmetric, z = 0), groups of
 * `group` inputs. Kp: K padded to the kernel's block. Writes codes (NB·Kp bytes) and idx (NB·Kp/2 bytes) whole.
 * A group with fewer than 2 nonzero weights (u ≠ z + 8; inputs past K count as zero) keeps zero ones at its
 * lowest free inputs. Returns −1, or r·(Kp/4) + g for the first group (row r, inputs 4g..4g+3) with more than 2
 * nonzero weights; then codes and idx hold nothing meaningful.
 */
export function qu4_place_2of4(packed: usize, N: i32, K: i32, zp: usize, ng: i32, group: i32, Kp: i32, codes: usize, idx: usize): i32 {
  assert(N >= 0 && K >= 0 && ng > 0 && group > 0 && Kp >= K && (Kp & 15) == 0, "qu4_place_2of4: bad sizes");
  const NB = (N + 3) >> 2;
  const G = Kp >> 2;
  memory.fill(codes, 0, <usize>NB * <usize>Kp);
  memory.fill(idx, 0, <usize>NB * <usize>G * 2);
  const wpr = <usize>((K + 7) >> 3);
  for (let r = 0; r < N; r++) {
    const rr = r & 3;
    const crow = codes + <usize>(r >> 2) * <usize>Kp + <usize>(4 * rr);
    const irow = idx + <usize>(r >> 2) * <usize>G * 2 + <usize>(rr >> 1);
    const ish = <u32>(4 * (rr & 1));
    const prow = packed + <usize>r * wpr * 4;
    for (let g = 0; g < G; g++) {
      const k0 = g << 2;
      let m: u32 = 0;
      let z: u32 = 8; // the stored code of a zero weight
      let nib: u32 = 0;
      if (k0 < K) {
        if (zp != 0) z = <u32>(load<i8>(zp + <usize>r * <usize>ng + <usize>(k0 / group)) + 8) & 15;
        nib = (load<u32>(prow + (<usize>(k0 >> 3) << 2)) >> (<u32>(k0 & 7) << 2)) & 0xffff;
        for (let i = 0; i < 4; i++) if (k0 + i < K && ((nib >> (<u32>i << 2)) & 15) != z) m |= 1 << i;
      }
      if (popcnt(m) > 2) return r * G + g;
      while (popcnt(m) < 2) m |= ~m & (m + 1); // the lowest free input
      const i0 = ctz(m), i1 = ctz(m & (m - 1));
      store<u8>(irow + (<usize>g << 1), load<u8>(irow + (<usize>g << 1)) | <u8>((i0 | (i1 << 2)) << ish));
      // q & 15 of the kept inputs (a zero weight's: z's); u16 (2·rr + s) of chunk g >> 2, nibble g & 3
      const c0 = (k0 + <i32>i0 < K ? (nib >> (i0 << 2)) & 15 : z) ^ 8;
      const c1 = (k0 + <i32>i1 < K ? (nib >> (i1 << 2)) & 15 : z) ^ 8;
      const at = crow + (<usize>(g >> 2) << 4) + <usize>((g & 3) >> 1);
      const sh = <u32>(4 * (g & 1));
      store<u8>(at, load<u8>(at) | <u8>(c0 << sh));
      store<u8>(at + 2, load<u8>(at + 2) | <u8>(c1 << sh));
    }
  }
  return -1;
}

/**
 * Build the same layout from wasprune's compact 2:4 file layout: `kept`, N rows of ceil(K/16) u32 holding each
 * row's kept codes in input order (kept code c in bits 4·(c mod 8) of word c/8, as u = q + 8), and `mask`, N rows
 * of ceil(K/8) bytes (input i kept: bit i mod 8 of byte i/8). K a multiple of 4. Every group keeps exactly 2
 * inputs; no zero points are needed (a dropped weight is not stored). Returns −1, or r·(Kp/4) + g for the first
 * group (row r) that keeps other than 2 of its inputs 4g..4g+3, or N·(Kp/4) + r for a row with a mask bit set past
 * K; then codes and idx hold nothing meaningful. For a file written by wasprune it gives the bytes qu4_place_2of4 gives for the
 * same codes in pack-quantized words.
 */
export function qu4_place_2of4_kept(kept: usize, mask: usize, N: i32, K: i32, Kp: i32, codes: usize, idx: usize): i32 {
  assert(N >= 0 && K >= 0 && (K & 3) == 0 && Kp >= K && (Kp & 15) == 0, "qu4_place_2of4_kept: bad sizes");
  const NB = (N + 3) >> 2;
  const G = Kp >> 2;
  const GK = K >> 2;
  memory.fill(codes, 0, <usize>NB * <usize>Kp);
  memory.fill(idx, 0, <usize>NB * <usize>G * 2);
  const wpr = <usize>((K + 15) >> 4);
  const mpr = <usize>((K + 7) >> 3);
  for (let r = 0; r < N; r++) {
    const rr = r & 3;
    const crow = codes + <usize>(r >> 2) * <usize>Kp + <usize>(4 * rr);
    const irow = idx + <usize>(r >> 2) * <usize>G * 2 + <usize>(rr >> 1);
    const ish = <u32>(4 * (rr & 1));
    const krow = kept + <usize>r * wpr * 4;
    const mrow = mask + <usize>r * mpr;
    for (let g = 0; g < G; g++) {
      // inputs past K: positions 0 and 1, codes 0 (as qu4_place_2of4 pads)
      let m: u32 = 3;
      let c0: u32 = 0, c1: u32 = 0;
      if (g < GK) {
        m = (<u32>load<u8>(mrow + (<usize>g >> 1)) >> (<u32>(g & 1) << 2)) & 15;
        if (popcnt(m) != 2) return r * G + g;
        // the group's two kept codes: kept codes 2g, 2g + 1 of the row, one byte of its words
        const b = <u32>load<u8>(krow + (<usize>g));
        c0 = (b & 15) ^ 8;
        c1 = (b >> 4) ^ 8;
      }
      const i0 = ctz(m), i1 = ctz(m & (m - 1));
      store<u8>(irow + (<usize>g << 1), load<u8>(irow + (<usize>g << 1)) | <u8>((i0 | (i1 << 2)) << ish));
      const at = crow + (<usize>(g >> 2) << 4) + <usize>((g & 3) >> 1);
      const sh = <u32>(4 * (g & 1));
      store<u8>(at, load<u8>(at) | <u8>(c0 << sh));
      store<u8>(at + 2, load<u8>(at + 2) | <u8>(c1 << sh));
    }
    if ((K & 7) != 0 && (<u32>load<u8>(mrow + mpr - 1) >> 4) != 0) return N * G + r;
  }
  return -1;
}

/**
 * The swizzle mask of a group from its two position bytes (ab's low 16 bits): rows 0, 1 from byte 0 (low 8 bytes),
 * rows 2, 3 from byte 1 (high 8 bytes), for x in the low (odd = false) or high 8 bytes of a v128.
 */
// @ts-ignore: decorator
@inline
function mask24(ab: usize, odd: bool): v128 {
  const t = QM + (odd ? 2048 : 0);
  return v128.load64_lane(t + ((ab >> 5) & 0x7f8), v128.load64_zero(t + ((ab & 255) << 3)), 1);
}

/** Group g's 8 codes of a chunk (nibble g of each u16 lane) as i16 lanes, sign-extended by two shifts, less the zero points. */
// @ts-ignore: decorator
@inline
function groupCodes(v: v128, g: i32, asym: bool, zv: v128): v128 {
  const w = g == 3 ? i16x8.shr_s(v, 12) : i16x8.shr_s(i16x8.shl(v, 12 - 4 * g), 12);
  return asym ? i16x8.sub(w, zv) : w;
}

/** One 16-input chunk of 4 rows against the activations at xp: the 4 groups' gathered dot products, i32 per row. */
// @ts-ignore: decorator
@inline
function chunk24(xp: usize, m0: v128, m1: v128, m2: v128, m3: v128, w0: v128, w1: v128, w2: v128, w3: v128): v128 {
  const xa = v128.load(xp);
  const xb = v128.load(xp, 16);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(swizzleInRange(xa, m0), w0), i32x4.dot_i16x8_s(swizzleInRange(xa, m1), w1)),
    i32x4.add(i32x4.dot_i16x8_s(swizzleInRange(xb, m2), w2), i32x4.dot_i16x8_s(swizzleInRange(xb, m3), w3)),
  );
}

/** y[n..n+4) of position t = lanes of v, rows < N only. */
// @ts-ignore: decorator
@inline
function storeRows4(yp: usize, rows: i32, v: v128): void {
  if (rows >= 4) {
    v128.store(yp, v);
  } else {
    store<f32>(yp, f32x4.extract_lane(v, 0));
    if (rows > 1) store<f32>(yp, f32x4.extract_lane(v, 1), 4);
    if (rows > 2) store<f32>(yp, f32x4.extract_lane(v, 2), 8);
  }
}

// @ts-ignore: decorator
@inline
function spmm24(asym: bool, xq: usize, xs: usize, codes: usize, idx: usize, sc: usize, zp: usize, y: usize, T: i32, N: i32, K: i32, ng: i32, B: i32): void {
  const Kp = paddedK(K, B);
  const nb = Kp / B;
  const chunksPerBlock = B >> 4;
  const blockCodes = <usize>Kp;
  const blockIdx = <usize>Kp >> 1;
  const xRow = <usize>Kp << 1;
  const xsRow = <usize>nb << 3;
  const grouped = ng > 1;
  const NB = (N + 3) >> 2;
  for (let blk = 0; blk < NB; blk++) {
    const cb = codes + <usize>blk * blockCodes;
    const ib = idx + <usize>blk * blockIdx;
    const scb = sc + ((<usize>blk * <usize>ng) << 4);
    const zpb = zp + ((<usize>blk * <usize>ng) << 4);
    const rows = N - (blk << 2);
    let t = 0;
    // four positions at a time: each group's codes and masks decoded once
    for (; t + 4 <= T; t += 4) {
      const x0 = xq + <usize>t * xRow;
      let vy0 = f32x4.splat(0);
      let vy1 = f32x4.splat(0);
      let vy2 = f32x4.splat(0);
      let vy3 = f32x4.splat(0);
      let cp = cb;
      let ip = ib;
      let xo: usize = 0;
      for (let b = 0; b < nb; b++) {
        const go: usize = grouped ? <usize>b << 4 : 0;
        const zv = asym ? v128.load(zpb + go) : i16x8.splat(0);
        let d0 = i32x4.splat(0);
        let d1 = i32x4.splat(0);
        let d2 = i32x4.splat(0);
        let d3 = i32x4.splat(0);
        for (let c = 0; c < chunksPerBlock; c++) {
          const v = v128.load(cp);
          const w0 = groupCodes(v, 0, asym, zv);
          const w1 = groupCodes(v, 1, asym, zv);
          const w2 = groupCodes(v, 2, asym, zv);
          const w3 = groupCodes(v, 3, asym, zv);
          const q0 = <usize>load<u32>(ip);
          const q1 = <usize>load<u32>(ip, 4);
          const m0 = mask24(q0, false);
          const m1 = mask24(q0 >> 16, true);
          const m2 = mask24(q1, false);
          const m3 = mask24(q1 >> 16, true);
          const xp = x0 + xo;
          d0 = i32x4.add(d0, chunk24(xp, m0, m1, m2, m3, w0, w1, w2, w3));
          d1 = i32x4.add(d1, chunk24(xp + xRow, m0, m1, m2, m3, w0, w1, w2, w3));
          d2 = i32x4.add(d2, chunk24(xp + 2 * xRow, m0, m1, m2, m3, w0, w1, w2, w3));
          d3 = i32x4.add(d3, chunk24(xp + 3 * xRow, m0, m1, m2, m3, w0, w1, w2, w3));
          cp += 16;
          ip += 8;
          xo += 32;
        }
        const s = v128.load(scb + go);
        const xsb = xs + <usize>t * xsRow + (<usize>b << 3);
        vy0 = f32x4.add(vy0, f32x4.mul(f32x4.convert_i32x4_s(d0), f32x4.mul(f32x4.splat(load<f32>(xsb)), s)));
        vy1 = f32x4.add(vy1, f32x4.mul(f32x4.convert_i32x4_s(d1), f32x4.mul(f32x4.splat(load<f32>(xsb + xsRow)), s)));
        vy2 = f32x4.add(vy2, f32x4.mul(f32x4.convert_i32x4_s(d2), f32x4.mul(f32x4.splat(load<f32>(xsb + 2 * xsRow)), s)));
        vy3 = f32x4.add(vy3, f32x4.mul(f32x4.convert_i32x4_s(d3), f32x4.mul(f32x4.splat(load<f32>(xsb + 3 * xsRow)), s)));
      }
      const yp = y + ((<usize>t * <usize>N + (<usize>blk << 2)) << 2);
      storeRows4(yp, rows, vy0);
      storeRows4(yp + (<usize>N << 2), rows, vy1);
      storeRows4(yp + (<usize>N << 3), rows, vy2);
      storeRows4(yp + <usize>N * 12, rows, vy3);
    }
    for (; t < T; t++) {
      const xt = xq + <usize>t * xRow;
      let vy = f32x4.splat(0);
      let cp = cb;
      let ip = ib;
      let xp = xt;
      for (let b = 0; b < nb; b++) {
        const go: usize = grouped ? <usize>b << 4 : 0;
        const zv = asym ? v128.load(zpb + go) : i16x8.splat(0);
        let d = i32x4.splat(0);
        for (let c = 0; c < chunksPerBlock; c++) {
          const v = v128.load(cp);
          const w0 = groupCodes(v, 0, asym, zv);
          const w1 = groupCodes(v, 1, asym, zv);
          const w2 = groupCodes(v, 2, asym, zv);
          const w3 = groupCodes(v, 3, asym, zv);
          const q0 = <usize>load<u32>(ip);
          const q1 = <usize>load<u32>(ip, 4);
          d = i32x4.add(d, chunk24(xp, mask24(q0, false), mask24(q0 >> 16, true), mask24(q1, false), mask24(q1 >> 16, true), w0, w1, w2, w3));
          cp += 16;
          ip += 8;
          xp += 32;
        }
        const s = v128.load(scb + go);
        vy = f32x4.add(vy, f32x4.mul(f32x4.convert_i32x4_s(d), f32x4.mul(f32x4.splat(load<f32>(xs + <usize>t * xsRow + (<usize>b << 3))), s)));
      }
      storeRows4(y + ((<usize>t * <usize>N + (<usize>blk << 2)) << 2), rows, vy);
    }
  }
}

/**
 * y[T,N] = x·Wᵀ for a 2:4-sparse int4 W in the layout above (codes, idx 16-aligned, sc f32 [NB][ng][4], zp i16
 * [NB][ng][8] or 0 when symmetric), from x rounded by i16_quantize_blocks in order 2 (xq, xs, block B).
 */
export function qu4_gemm_2of4_nt(xq: usize, xs: usize, codes: usize, idx: usize, sc: usize, zp: usize, y: usize, T: i32, N: i32, K: i32, ng: i32, B: i32): void {
  checkArgs("qu4_gemm_2of4_nt: negative size", T, N, K, ng, B, xq, xs, sc, zp, y);
  assert((codes & 15) == 0 && (idx & 3) == 0 && (sc & 15) == 0 && (zp & 15) == 0, "qu4_gemm_2of4_nt: codes, sc, zp 16-, idx 4-byte aligned");
  if (zp != 0) spmm24(true, xq, xs, codes, idx, sc, zp, y, T, N, K, ng, B);
  else spmm24(false, xq, xs, codes, idx, sc, zp, y, T, N, K, ng, B);
}
