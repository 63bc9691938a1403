/**
 * @file `wasprune inspect`: architecture, shapes, parameter counts by kind, dtype, and per tensor the fraction
 * of exact zeros and the finest N:M pattern it satisfies along the input dimension (so a pruned model's
 * pattern is confirmed on the written file, not taken on trust).
 */
import type { Model } from "./types.js";
import { namedTensors } from "./names.js";
import { denseWeight } from "../model/linear.js";
import { countZeros } from "../sparse/zero.js";

export interface TensorReport {
  name: string;
  shape: number[];
  params: number;
  zeros: number;
  zeroFraction: number;
  /** storage of a compressed linear weight ("2:4" or "bcsr", see src/sparse/), absent when dense */
  format?: string;
  /** bytes of the compressed kernel layout (f32 values + indices) */
  sparseBytes?: number;
  /** e.g. "2:4" when every group of 4 consecutive inputs of every row has at most 2 nonzeros; null if none of 1:2, 2:4, 4:8, 1:4 holds */
  nm: string | null;
}

export interface InspectReport {
  path: string;
  format: string;
  dtype: string;
  config: Model["config"];
  params: { total: number; byKind: Record<string, number> };
  linear: { params: number; zeros: number; sparsity: number };
  tensors: TensorReport[];
  /** present when some linear weights are compressed: their f32 bytes dense and as stored for the kernels */
  compression?: { operators: number; denseBytes: number; bytes: number; saved: number };
}

const NM_CANDIDATES: Array<[number, number]> = [[1, 4], [1, 2], [2, 4], [2, 8], [4, 8]];

/** Largest-group patterns first would hide finer ones; report the tightest (lowest N/M, then smallest M) that holds. */
export function detectNM(data: Float32Array, rows: number, cols: number): string | null {
  const holds = (n: number, m: number): boolean => {
    if (cols % m !== 0) return false;
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let g = 0; g < cols; g += m) {
        let nz = 0;
        for (let j = 0; j < m; j++) if (data[base + g + j] !== 0) nz++; // ±0.0 is zero (src/sparse/zero.ts)
        if (nz > n) return false;
      }
    }
    return true;
  };
  const ok = NM_CANDIDATES.filter(([n, m]) => holds(n, m));
  if (ok.length === 0) return null;
  ok.sort((a, b) => a[0] / a[1] - b[0] / b[1] || a[1] - b[1]);
  return `${ok[0][0]}:${ok[0][1]}`;
}

export function inspectModel(model: Model): InspectReport {
  const tensors: TensorReport[] = [];
  const byKind: Record<string, number> = {};
  let total = 0;
  let linParams = 0;
  let linZeros = 0;
  const compression = { operators: 0, denseBytes: 0, bytes: 0, saved: 0 };
  for (const nt of namedTensors(model)) {
    const d = denseWeight(model.wasm, nt.tensor); // a compressed operator's is rebuilt for this tensor only
    const zeros = countZeros(d); // ±0.0: the one definition of a zero weight (src/sparse/zero.ts)
    const isLinear = nt.op !== undefined;
    const [rows, cols] = nt.tensor.shape.length === 2 ? nt.tensor.shape : [1, d.length];
    tensors.push({
      name: nt.name,
      shape: nt.tensor.shape,
      params: d.length,
      zeros,
      zeroFraction: zeros / d.length,
      nm: isLinear ? detectNM(d, rows, cols) : null,
      ...(nt.tensor.sparse ? { format: nt.tensor.sparse.format, sparseBytes: nt.tensor.sparse.bytes } : {}),
    });
    if (nt.tensor.sparse) {
      compression.operators++;
      compression.denseBytes += d.length * 4;
      compression.bytes += nt.tensor.sparse.bytes;
    }
    byKind[nt.kind] = (byKind[nt.kind] ?? 0) + d.length;
    total += d.length;
    if (isLinear) {
      linParams += d.length;
      linZeros += zeros;
    }
  }
  return {
    path: model.source.path,
    format: model.source.format,
    dtype: model.source.dtype,
    config: model.config,
    params: { total, byKind },
    linear: { params: linParams, zeros: linZeros, sparsity: linParams ? linZeros / linParams : 0 },
    tensors,
    ...(compression.operators ? { compression: { ...compression, saved: compression.denseBytes - compression.bytes } } : {}),
  };
}
