/**
 * @file Unstructured sparsity: the kernel layout (panel CSR, see assembly/f32-spmm-csr.ts for the layout and
 * why it was chosen) and compressed-tensors' sparse-bitmask file layout, with exact conversions.
 *
 * "Zero" is the bit pattern of +0.0; values move as their 32 bits, so dense → packed → dense is bit-exact.
 * File layout (sparse-bitmask): compressed [nnz] values row-major; bitmask u8 [N, ceil(K/8)] (bitorder
 * little); row_offsets i64 [N] (index of each row's first value in `compressed`); shape i64 [2].
 */
import { FormatError } from "../errors.js";

/** Columns per panel (u8 column offsets). Must match SPMM_KC in assembly/f32-spmm-common.ts. */
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
  /** (N) */ rowOffsets: Float64Array;
}

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Entries whose bits are not those of +0.0. */
export function countNonzeros(w: Float32Array): number {
  const u = bitsOf(w);
  let nz = 0;
  for (let i = 0; i < u.length; i++) if (u[i] !== 0) nz++;
  return nz;
}

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
        if (bits !== 0) {
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
      if (bits !== 0) {
        cb[j++] = bits;
        bitmask[n * rowBytes + (k >> 3)] |= 1 << (k & 7);
      }
    }
  }
  return { compressed, bitmask, rowOffsets };
}

/** sparse-bitmask tensors → kernel layout. A marked +0.0 value is dropped (the dense result is the same). */
export function fromFileBitmask(f: FileBitmask, N: number, K: number, file: string, name: string): PackedCsr {
  const rowBytes = Math.ceil(K / 8);
  if (f.bitmask.length !== N * rowBytes) throw new FormatError(file, `"${name}.bitmask" has ${f.bitmask.length} bytes, expected ${N * rowBytes} for shape [${N},${K}]`);
  const dense = new Float32Array(N * K);
  const u = bitsOf(dense);
  const cb = bitsOf(f.compressed);
  let j = 0;
  for (let n = 0; n < N; n++) {
    if (f.rowOffsets.length === N && f.rowOffsets[n] !== j) {
      throw new FormatError(file, `"${name}.row_offsets"[${n}] is ${f.rowOffsets[n]}, the bitmask implies ${j}`);
    }
    for (let k = 0; k < K; k++) {
      if ((f.bitmask[n * rowBytes + (k >> 3)]! >> (k & 7)) & 1) {
        if (j >= cb.length) throw new FormatError(file, `"${name}.bitmask" marks more values than the ${cb.length} in "${name}.compressed"`);
        u[n * K + k] = cb[j++]!;
      }
    }
  }
  if (j !== cb.length) throw new FormatError(file, `"${name}.compressed" has ${cb.length} values, the bitmask marks ${j}`);
  return packCsr(dense, N, K);
}

/** Bytes of the kernel layout of an [N,K] operator with nnz nonzeros. */
export function bytesCsr(N: number, K: number, nnz: number): number {
  return 4 * (Math.ceil(K / PANEL) * N + 1) + 5 * nnz;
}
