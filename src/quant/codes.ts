/**
 * @file A quantized linear weight on the host: integer codes, scales and zero points (compressed-tensors'
 * convention: w ≈ (q − z)·s, q signed in the scheme's range, z = 0 when symmetric), built from the dequantized
 * weights the quantizers leave in f32 (they are exactly (q − z)·s, so the codes are recovered exactly and
 * checked), and turned back into f32 (`dequantize`, bit for bit what the quantizer produced).
 */
import { WaspruneError } from "../errors.js";
import { qrange, type Grid } from "./scheme.js";

export interface QuantizedWeight {
  N: number;
  K: number;
  grid: Grid;
  /** [N·K] signed codes */
  codes: Int8Array;
  /** [N·ng] */
  scale: Float32Array;
  /** [N·ng] integer zero points (asymmetric only) */
  zero?: Int8Array;
  /**
   * [K] the scale group of each input (GPTQ's act-order "group": compressed-tensors' weight_g_idx); without it
   * input j is in group j / group
   */
  gIdx?: Int32Array;
}

/** The scale group (0..ng) of input j of `q`. */
export function groupOfInput(q: Pick<QuantizedWeight, "grid" | "gIdx">, j: number): number {
  return q.gIdx ? q.gIdx[j]! : Math.floor(j / q.grid.group);
}

/** The codes of `w` (N×K, dequantized on the grid `scale`/`zero`), or an error naming `what` if it is not on it. */
export function codesOf(w: Float32Array, N: number, K: number, grid: Grid, scale: Float32Array, zero: Float32Array | undefined, what: string): QuantizedWeight {
  const [qmin, qmax] = qrange(grid.bits);
  const codes = new Int8Array(N * K);
  const z8 = zero ? Int8Array.from(zero) : undefined;
  for (let r = 0; r < N; r++) {
    for (let j = 0; j < K; j++) {
      const g = r * grid.ng + Math.floor(j / grid.group);
      const s = scale[g]!;
      const z = zero ? zero[g]! : 0;
      const v = w[r * K + j]!;
      const q = Math.min(qmax, Math.max(qmin, Math.round(Math.fround(v / s)) + z));
      if (Math.fround((q - z) * s) !== v) throw new WaspruneError(`${what}: weight [${r}, ${j}] = ${v} is not on its quantization grid (scale ${s}, zero point ${z})`);
      codes[r * K + j] = q;
    }
  }
  return { N, K, grid, codes, scale, ...(z8 ? { zero: z8 } : {}) };
}

/** The f32 weights (N×K) a quantized weight stands for: (q − z)·s, every zero +0.0. */
export function dequantize(q: QuantizedWeight, out = new Float32Array(q.N * q.K), rows: [number, number] = [0, q.N]): Float32Array {
  const { K, grid } = q;
  for (let r = rows[0]; r < rows[1]; r++) {
    const o = (r - rows[0]) * K;
    for (let j = 0; j < K; j++) {
      const g = r * grid.ng + groupOfInput(q, j);
      const z = q.zero ? q.zero[g]! : 0;
      out[o + j] = Math.fround((q.codes[r * K + j]! - z) * q.scale[g]!) + 0;
    }
  }
  return out;
}

/** The zero point of row r's scale group holding input k (0 when symmetric). */
export function zeroPointAt(q: QuantizedWeight, r: number, k: number): number {
  return q.zero ? q.zero[r * q.grid.ng + groupOfInput(q, k)]! : 0;
}

/**
 * The nonzero weights (code ≠ zero point) of row r's group of 4 inputs j..j+3 (j a multiple of 4), as bits 0..3;
 * inputs past K count as zero (each input against its own scale group's zero point: with act-order groups the
 * 4 may be in different ones).
 */
export function nonzeroMask4(q: QuantizedWeight, r: number, j: number): number {
  const row = r * q.K;
  let m = 0;
  for (let i = 0; i < 4 && j + i < q.K; i++) if (q.codes[row + j + i] !== zeroPointAt(q, r, j + i)) m |= 1 << i;
  return m;
}

/**
 * KEPT_PAIR[nonzeroMask4]: the two inputs a 2:4 layout keeps of that group (i0 | i1 << 2, i0 < i1; a group with
 * fewer than 2 nonzero weights keeps zero ones at its lowest free inputs), or −1 for more than 2 nonzero weights.
 */
export const KEPT_PAIR: readonly number[] = Array.from({ length: 16 }, (_, m) => {
  const kept = [0, 1, 2, 3].filter((i) => (m >> i) & 1);
  if (kept.length > 2) return -1;
  for (let i = 0; kept.length < 2; i++) if (!kept.includes(i)) kept.push(i);
  kept.sort((a, b) => a - b);
  return kept[0]! | (kept[1]! << 2);
});

/** Whether every group of 4 inputs (4j..4j+3) of every row of `q` holds at most 2 nonzero weights (q ≠ z). */
export function is2of4Codes(q: QuantizedWeight): boolean {
  for (let r = 0; r < q.N; r++) {
    for (let j = 0; j < q.K; j += 4) if (KEPT_PAIR[nonzeroMask4(q, r, j)]! < 0) return false;
  }
  return true;
}

/** `q` with its rows reordered: row i of the result is row order[i] of `q` (codes, scales and zero points). */
export function reorderRows(q: QuantizedWeight, order: ArrayLike<number>): QuantizedWeight {
  const { N, K, grid } = q;
  const ng = grid.ng;
  const codes = new Int8Array(N * K);
  const scale = new Float32Array(N * ng);
  const zero = q.zero ? new Int8Array(N * ng) : undefined;
  for (let i = 0; i < N; i++) {
    const r = order[i]!;
    codes.set(q.codes.subarray(r * K, (r + 1) * K), i * K);
    scale.set(q.scale.subarray(r * ng, (r + 1) * ng), i * ng);
    zero?.set(q.zero!.subarray(r * ng, (r + 1) * ng), i * ng);
  }
  return { N, K, grid, codes, scale, ...(zero ? { zero } : {}), ...(q.gIdx ? { gIdx: q.gIdx } : {}) };
}

/** Random codes and scales on `grid` (every code in range, scales in [0.001, 0.051)): benchmarks and kernel tests. */
export function randomQuantized(rand: () => number, N: number, K: number, grid: Grid): QuantizedWeight {
  const [qmin, qmax] = qrange(grid.bits);
  const code = () => qmin + Math.floor(rand() * (qmax - qmin + 1));
  const codes = new Int8Array(N * K).map(code);
  const scale = new Float32Array(N * grid.ng).map(() => Math.fround(0.001 + rand() * 0.05));
  const zero = grid.symmetric ? undefined : new Int8Array(N * grid.ng).map(code);
  return { N, K, grid, codes, scale, ...(zero ? { zero } : {}) };
}
