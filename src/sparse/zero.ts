/**
 * @file The one definition of a zero weight in wasprune: **±0.0** — the float comparison `x == 0`, i.e. the bits
 * with the sign cleared are 0 (NaN is a value, not a zero). Pruning (the kernels' nonzero counts and masks),
 * inspect, compress and the sparse packers all use it, and every place that writes a zero writes **+0.0**: the
 * pruners (the mask kernels select instead of multiplying, so W·0 = −0.0 never reaches a pruned weight), the
 * packers (a zero kept to fill a 2:4 group is stored as +0.0), and `canonicalZeros` for everything else. So a
 * pruned model's bytes say what it is, and any other tool counting `!= 0` or bit patterns agrees.
 */

/** True for the bits of +0.0 or −0.0 (a Uint32 view of a float32). */
export function isZeroBits(bits: number): boolean {
  return (bits & 0x7fffffff) === 0;
}

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Entries of `w` that are not ±0.0. */
export function countNonzeros(w: Float32Array): number {
  const u = bitsOf(w);
  let nz = 0;
  for (let i = 0; i < u.length; i++) if ((u[i]! & 0x7fffffff) !== 0) nz++;
  return nz;
}

/** Entries of `w` that are ±0.0. */
export function countZeros(w: Float32Array): number {
  return w.length - countNonzeros(w);
}

/** Rewrite every −0.0 of `w` as +0.0, in place; returns how many were rewritten. */
export function canonicalZeros(w: Float32Array): number {
  const u = bitsOf(w);
  let n = 0;
  for (let i = 0; i < u.length; i++) {
    if (u[i] === 0x80000000) {
      u[i] = 0;
      n++;
    }
  }
  return n;
}

/** Number of −0.0 entries (a pruned model must have none). */
export function countNegativeZeros(w: Float32Array): number {
  const u = bitsOf(w);
  let n = 0;
  for (let i = 0; i < u.length; i++) if (u[i] === 0x80000000) n++;
  return n;
}
