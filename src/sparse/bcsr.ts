/**
 * @file Unstructured sparsity: the kernel layout (panel CSR, see assembly/spmm-csr.ts for the layout and
 * why it was chosen) and compressed-tensors' sparse-bitmask file layout, with exact conversions.
 *
 * "Zero" is ±0.0 (src/sparse/zero.ts) and is not stored; other values move as their 32 bits, so dense → packed →
 * dense is bit-exact up to the sign of zeros (exact for a pruned model, whose zeros are +0.0).
 * File layout (sparse-bitmask): compressed [nnz] values row-major; bitmask u8 [N, ceil(K/8)] (bitorder
 * little); row_offsets i64 [N] (index of each row's first value in `compressed`); shape i64 [2].
 */
import { FormatError } from "../errors.js";
import { countNonzeros, isZeroBits } from "./zero.js";

/** Columns per panel (u8 column offsets). Must match SPMM_KC in assembly/spmm-common.ts. */
export const PANEL = 256;

export interface PackedCsr {
  N: number;
  K: number;
  /** (ceil(K/256)·N + 1) start of (panel p, row n) at p·N+n */ rowptr: Uint32Array;
  /** (nnz) column − 256·panel */ cols: Uint8Array;
  /** (nnz) */ vals: Float32Array;
}

export interface FileBitmask {
  /** (nnz) */ compressed: Float32Array;
  /** (N, ceil(K/8)) */ bitmask: Uint8Array;
  /** (N) */ rowOffsets: ArrayLike<number>;
}

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

export function packCsr(w: Float32Array, N: number, K: number): PackedCsr {
  const P = Math.ceil(K / PANEL);
  const u = bitsOf(w);
  const nnz = countNonzeros(w);
  const rowptr = new Uint32Array(P * N + 1);
  const cols = new Uint8Array(nnz);
  const vals = new Float32Array(nnz);
  const v = bitsOf(vals);
  let j = 0;
  for (let p = 0; p < P; p++) {
    const k1 = Math.min(K, (p + 1) * PANEL);
    for (let n = 0; n < N; n++) {
      rowptr[p * N + n] = j;
      for (let k = p * PANEL; k < k1; k++) {
        const bits = u[n * K + k]!;
        if (!isZeroBits(bits)) {
          cols[j] = k - p * PANEL;
          v[j++] = bits;
        }
      }
    }
  }
  rowptr[P * N] = j;
  return { N, K, rowptr, cols, vals };
}

export function unpackCsr(c: PackedCsr): Float32Array {
  const { N, K } = c;
  const P = Math.ceil(K / PANEL);
  const out = new Float32Array(N * K);
  const u = bitsOf(out);
  const v = bitsOf(c.vals);
  for (let p = 0; p < P; p++) {
    for (let n = 0; n < N; n++) {
      for (let j = c.rowptr[p * N + n]!; j < c.rowptr[p * N + n + 1]!; j++) u[n * K + p * PANEL + c.cols[j]!] = v[j]!;
    }
  }
  return out;
}

/** Kernel layout → sparse-bitmask tensors. */
export function toFileBitmask(c: PackedCsr): FileBitmask {
  const { N, K } = c;
  const dense = unpackCsr(c);
  const u = bitsOf(dense);
  const rowBytes = Math.ceil(K / 8);
  const compressed = new Float32Array(c.vals.length);
  const cb = bitsOf(compressed);
  const bitmask = new Uint8Array(N * rowBytes);
  const rowOffsets = new Float64Array(N);
  let j = 0;
  for (let n = 0; n < N; n++) {
    rowOffsets[n] = j;
    for (let k = 0; k < K; k++) {
      const bits = u[n * K + k]!;
      if (!isZeroBits(bits)) {
        cb[j++] = bits;
        bitmask[n * rowBytes + (k >> 3)] |= 1 << (k & 7);
      }
    }
  }
  return { compressed, bitmask, rowOffsets };
}

/**
 * sparse-bitmask tensors → kernel layout, directly (no dense intermediate: a loaded compressed model never
 * holds the dense operator). Every marked value is kept, a marked +0.0 too (it multiplies like any other).
 */
export function fromFileBitmask(f: FileBitmask, N: number, K: number, file: string, name: string): PackedCsr {
  const rowBytes = Math.ceil(K / 8);
  if (f.bitmask.length !== N * rowBytes) throw new FormatError(file, `"${name}.bitmask" has ${f.bitmask.length} bytes, expected ${N * rowBytes} for shape [${N},${K}]`);
  if (f.rowOffsets.length !== N) throw new FormatError(file, `"${name}.row_offsets" has ${f.rowOffsets.length} entries, expected ${N}`);
  const P = Math.ceil(K / PANEL);
  const rowptr = new Uint32Array(P * N + 1);
  for (let n = 0; n < N; n++) {
    const o = f.rowOffsets[n]!;
    if (n > 0 && o < f.rowOffsets[n - 1]!) throw new FormatError(file, `"${name}.row_offsets" is not monotone: entry ${n} is ${o}, entry ${n - 1} is ${f.rowOffsets[n - 1]}`);
    if (o > f.compressed.length) throw new FormatError(file, `"${name}.row_offsets"[${n}] is ${o}, past the ${f.compressed.length} values of "${name}.compressed"`);
  }
  // pass 1: values per (panel, row), checked against row_offsets and the number of values
  let j = 0;
  for (let n = 0; n < N; n++) {
    if (f.rowOffsets[n] !== j) throw new FormatError(file, `"${name}.row_offsets"[${n}] is ${f.rowOffsets[n]}, but the bitmask marks ${j} values in the rows before it`);
    for (let b = 0; b < rowBytes; b++) {
      let m = f.bitmask[n * rowBytes + b]!;
      if (b === rowBytes - 1 && K % 8) m &= (1 << K % 8) - 1; // bits past K are padding
      for (; m; m &= m - 1, j++) rowptr[Math.floor((8 * b + 31 - Math.clz32(m & -m)) / PANEL) * N + n + 1]++;
    }
  }
  if (j !== f.compressed.length) throw new FormatError(file, `"${name}.compressed" has ${f.compressed.length} values, the bitmask marks ${j}`);
  for (let i = 0; i < P * N; i++) rowptr[i + 1]! += rowptr[i]!;
  // pass 2: scatter values (as bits) and panel-relative columns
  const cols = new Uint8Array(j);
  const vals = new Float32Array(j);
  const v = bitsOf(vals);
  const cb = bitsOf(f.compressed);
  const at = rowptr.slice(0, P * N);
  j = 0;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < rowBytes; b++) {
      let m = f.bitmask[n * rowBytes + b]!;
      if (b === rowBytes - 1 && K % 8) m &= (1 << K % 8) - 1;
      for (; m; m &= m - 1) {
        const k = 8 * b + 31 - Math.clz32(m & -m);
        const p = Math.floor(k / PANEL);
        const d = at[p * N + n]!++;
        cols[d] = k - p * PANEL;
        v[d] = cb[j++]!;
      }
    }
  }
  return { N, K, rowptr, cols, vals };
}

/** Bytes of the kernel layout of an [N,K] operator with nnz nonzeros. */
export function bytesCsr(N: number, K: number, nnz: number, valueBytes = 4): number {
  return 4 * (Math.ceil(K / PANEL) * N + 1) + (1 + valueBytes) * nnz;
}
