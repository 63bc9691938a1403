/**
 * @file 2:4 sparsity: the kernel layout ("4x", see assembly/spmm-nm.ts) and compressed-tensors'
 * sparse-24-bitmask file layout, and exact conversions between them and dense.
 *
 * "Zero" is ±0.0 (src/sparse/zero.ts); every other value (NaN too) is moved as its 32 bits (Uint32Array), and
 * zeros are stored as +0.0, so dense → packed → dense is bit-exact up to the sign of zeros (exact for a pruned
 * model, whose zeros are +0.0). A group of 4 with fewer than 2 nonzeros keeps its lowest-index zeros as well
 * (stored +0.0), so every group stores exactly 2 values (as sparse-24-bitmask does).
 *
 * Kernel layout of W [N,K] (K % 4 == 0), NB = ceil(N/4) blocks of 4 rows, G = K/4 groups:
 *   vals f32 [NB][G][2][4]  vals[b][g][s][r]: s-th kept value (ascending column) of row 4b+r in group g
 *   idx  u8  [NB][G][2]     bits 2r..2r+1 of idx[b][g][s]: its column inside the group (0..3)
 * File layout (sparse-24-bitmask): compressed [N, K/2] kept values row-major in column order; bitmask u8
 * [N, ceil(K/8)], bit j%8 of byte j/8 (numpy packbits, bitorder "little") set where a value is kept.
 */
import { FormatError } from "../errors.js";
import { isZeroBits } from "./zero.js";

export interface Packed24 {
  N: number;
  K: number;
  /** (ceil(N/4)·K/4·8) */ vals: Float32Array;
  /** (ceil(N/4)·K/4·2) */ idx: Uint8Array;
}

export interface File24 {
  /** (N, K/2) */ compressed: Float32Array;
  /** (N, ceil(K/8)) */ bitmask: Uint8Array;
}

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** True when K % 4 == 0 and every group of 4 consecutive columns of every row has at most 2 nonzeros (not ±0.0). */
export function is2of4(w: Float32Array, N: number, K: number): boolean {
  if (K % 4 !== 0 || w.length !== N * K) return false;
  const u = bitsOf(w);
  const nz = (b: number) => (isZeroBits(b) ? 0 : 1);
  for (let i = 0; i < u.length; i += 4) {
    if (nz(u[i]!) + nz(u[i + 1]!) + nz(u[i + 2]!) + nz(u[i + 3]!) > 2) return false;
  }
  return true;
}

/** The two kept columns (ascending) of group bits u[o..o+4): nonzeros first choice, then the lowest zeros. */
function keptPair(u: Uint32Array, o: number): [number, number] {
  let a = -1;
  let b = -1;
  for (let j = 0; j < 4; j++) {
    if (!isZeroBits(u[o + j]!)) {
      if (a < 0) a = j;
      else if (b < 0) b = j;
      else throw new RangeError(`group at ${o} has more than 2 nonzeros`);
    }
  }
  for (let j = 0; j < 4 && b < 0; j++) {
    if (j === a) continue;
    if (a < 0) a = j;
    else b = j;
  }
  return a < b ? [a, b] : [b, a];
}

/** Padding rows of the last block (N % 4 != 0): zeros at columns 0 and 1 of each group. */
function padLastBlock(idx: Uint8Array, N: number, G: number): void {
  const NB = Math.ceil(N / 4);
  for (let n = N; n < NB * 4; n++) {
    const r = n & 3;
    for (let g = 0; g < G; g++) idx[((NB - 1) * G + g) * 2 + 1] |= 1 << (2 * r);
  }
}

/** Dense W [N,K] (2:4) → kernel layout. Throws RangeError if W is not 2:4. */
export function pack2of4(w: Float32Array, N: number, K: number): Packed24 {
  if (K % 4 !== 0) throw new RangeError(`2:4 needs K % 4 == 0, got K=${K}`);
  const G = K / 4;
  const NB = Math.ceil(N / 4);
  const vals = new Float32Array(NB * G * 8);
  const idx = new Uint8Array(NB * G * 2);
  const u = bitsOf(w);
  const v = bitsOf(vals);
  for (let n = 0; n < N; n++) {
    const b = n >> 2;
    const r = n & 3;
    for (let g = 0; g < G; g++) {
      const o = n * K + 4 * g;
      const [c0, c1] = keptPair(u, o);
      const base = (b * G + g) * 8;
      v[base + r] = isZeroBits(u[o + c0]!) ? 0 : u[o + c0]!; // a kept zero is stored +0.0
      v[base + 4 + r] = isZeroBits(u[o + c1]!) ? 0 : u[o + c1]!;
      idx[(b * G + g) * 2] |= c0 << (2 * r);
      idx[(b * G + g) * 2 + 1] |= c1 << (2 * r);
    }
  }
  padLastBlock(idx, N, G);
  return { N, K, vals, idx };
}

/** Kernel layout → dense W [N,K] (exact inverse of pack2of4). */
export function unpack2of4(p: Packed24): Float32Array {
  const { N, K } = p;
  const G = K / 4;
  const out = new Float32Array(N * K);
  const u = bitsOf(out);
  const v = bitsOf(p.vals);
  for (let n = 0; n < N; n++) {
    const b = n >> 2;
    const r = n & 3;
    for (let g = 0; g < G; g++) {
      const base = (b * G + g) * 8;
      const c0 = (p.idx[(b * G + g) * 2]! >> (2 * r)) & 3;
      const c1 = (p.idx[(b * G + g) * 2 + 1]! >> (2 * r)) & 3;
      u[n * K + 4 * g + c0] = v[base + r]!;
      u[n * K + 4 * g + c1] = v[base + 4 + r]!;
    }
  }
  return out;
}

/** Kernel layout → sparse-24-bitmask tensors. */
export function toFile2of4(p: Packed24): File24 {
  const { N, K } = p;
  const G = K / 4;
  const rowBytes = Math.ceil(K / 8);
  const compressed = new Float32Array(N * (K / 2));
  const bitmask = new Uint8Array(N * rowBytes);
  const c = bitsOf(compressed);
  const v = bitsOf(p.vals);
  for (let n = 0; n < N; n++) {
    const b = n >> 2;
    const r = n & 3;
    for (let g = 0; g < G; g++) {
      const base = (b * G + g) * 8;
      for (let s = 0; s < 2; s++) {
        const col = 4 * g + ((p.idx[(b * G + g) * 2 + s]! >> (2 * r)) & 3);
        c[n * (K / 2) + 2 * g + s] = v[base + 4 * s + r]!;
        bitmask[n * rowBytes + (col >> 3)] |= 1 << (col & 7);
      }
    }
  }
  return { compressed, bitmask };
}

/** sparse-24-bitmask tensors → kernel layout; `file`/`name` for messages. Every group must mark exactly 2 values. */
export function fromFile2of4(f: File24, N: number, K: number, file: string, name: string): Packed24 {
  if (K % 4 !== 0) throw new FormatError(file, `"${name}": sparse-24-bitmask needs columns % 4 == 0, shape is [${N},${K}]`);
  const rowBytes = Math.ceil(K / 8);
  if (f.compressed.length !== N * (K / 2)) throw new FormatError(file, `"${name}.compressed" has ${f.compressed.length} values, expected ${N * (K / 2)} for shape [${N},${K}]`);
  if (f.bitmask.length !== N * rowBytes) throw new FormatError(file, `"${name}.bitmask" has ${f.bitmask.length} bytes, expected ${N * rowBytes}`);
  const G = K / 4;
  const NB = Math.ceil(N / 4);
  const vals = new Float32Array(NB * G * 8);
  const idx = new Uint8Array(NB * G * 2);
  const v = bitsOf(vals);
  const c = bitsOf(f.compressed);
  for (let n = 0; n < N; n++) {
    const b = n >> 2;
    const r = n & 3;
    for (let g = 0; g < G; g++) {
      let s = 0;
      for (let j = 0; j < 4; j++) {
        const col = 4 * g + j;
        if (!((f.bitmask[n * rowBytes + (col >> 3)]! >> (col & 7)) & 1)) continue;
        if (s === 2) throw new FormatError(file, `"${name}.bitmask": row ${n} group ${g} marks more than 2 of 4 values`);
        v[(b * G + g) * 8 + 4 * s + r] = c[n * (K / 2) + 2 * g + s]!;
        idx[(b * G + g) * 2 + s] |= j << (2 * r);
        s++;
      }
      if (s !== 2) throw new FormatError(file, `"${name}.bitmask": row ${n} group ${g} marks ${s} of 4 values, expected 2`);
    }
  }
  padLastBlock(idx, N, G);
  return { N, K, vals, idx };
}

/** Bytes of the kernel layout (values of `valueBytes` each, + indices) of an [N,K] 2:4 operator. */
export function bytes2of4(N: number, K: number, valueBytes = 4): number {
  return Math.ceil(N / 4) * (K / 4) * (8 * valueBytes + 2);
}
