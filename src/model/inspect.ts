/**
 * @file `wasprune inspect`: architecture, shapes, parameter counts by kind, dtype, and per tensor the fraction
 * of exact zeros and the finest N:M pattern it satisfies along the input dimension (so a pruned model's
 * pattern is confirmed on the written file, not taken on trust).
 */
import { LINEAR_OPS, type LinearWeight, type Model, type Tensor } from "./types.js";
import { denseWeight } from "./linear.js";
import { countZeros } from "../sparse/zero.js";
import { hfTensorSpecs, type HFTensorSpec } from "./specs.js";
import type { ModelStore } from "./residency.js";
import { KIND } from "./names.js";
import { isQuantizedConfig, schemesFromConfig, type OperatorScheme } from "../quant/compressed-tensors.js";

export interface TensorReport {
  name: string;
  shape: number[];
  params: number;
  zeros: number;
  zeroFraction: number;
  /** storage of a compressed linear weight ("2:4" or "csr", see src/sparse/), absent when dense */
  format?: string;
  /** bytes of the compressed kernel layout (f32 values + indices) */
  sparseBytes?: number;
  /** a quantized checkpoint's operator: its scheme, as its quantization_config group declares it */
  quantized?: { scheme: string; format: string; activations: "int8" | null };
  /** e.g. "2:4" when every group of 4 consecutive inputs of every row has at most 2 nonzeros; null if none of 1:2, 2:4, 4:8, 1:4 holds */
  nm: string | null;
}

export interface InspectReport {
  path: string;
  format: string;
  dtype: string;
  config: Model["config"];
  /** how the model was opened: all in memory, or streamed one decoder layer at a time */
  residency: "resident" | "streamed";
  params: { total: number; byKind: Record<string, number> };
  linear: { params: number; zeros: number; sparsity: number };
  tensors: TensorReport[];
  /** present when some linear weights are compressed: their f32 bytes dense and as stored for the kernels */
  compression?: { operators: number; denseBytes: number; bytes: number; saved: number };
  /** a quantized checkpoint (compressed-tensors): its operators counted by scheme, format and activations */
  quantization?: Record<string, number>;
}

/** "int4 g64" / "int8 channel" (+ " asym") of a config group's scheme. */
function schemeLabel(s: OperatorScheme): string {
  return `int${s.grid.bits} ${s.grid.strategy === "group" ? `g${s.grid.group}` : "channel"}${s.grid.symmetric ? "" : " asym"}`;
}

/** How a quantized operator is described: "int4 g64, int-quantized, int8 activations". */
export function quantLabel(q: NonNullable<TensorReport["quantized"]>): string {
  return `${q.scheme}, ${q.format}${q.activations ? ", int8 activations" : ""}`;
}

const NM_CANDIDATES: Array<[number, number]> = [[1, 4], [1, 2], [2, 4], [2, 8], [4, 8]];

/** Zero count and tightest N:M of a row block, accumulated over the blocks of one tensor. */
class TensorCount {
  zeros = 0;
  private ok = new Set(NM_CANDIDATES.map(([n, m]) => `${n}:${m}`));
  add(data: Float32Array, rows: number, cols: number, linear: boolean): void {
    this.zeros += countZeros(data); // ±0.0: the one definition of a zero weight (src/sparse/zero.ts)
    if (!linear) return;
    for (const key of [...this.ok]) {
      const [n, m] = key.split(":").map(Number) as [number, number];
      if (detectOne(data, rows, cols, n, m) === false) this.ok.delete(key);
    }
  }
  nm(): string | null {
    const ok = [...this.ok].map((k) => k.split(":").map(Number) as [number, number]);
    if (ok.length === 0) return null;
    ok.sort((a, b) => a[0] / a[1] - b[0] / b[1] || a[1] - b[1]);
    return `${ok[0]![0]}:${ok[0]![1]}`;
  }
}

function detectOne(data: Float32Array, rows: number, cols: number, n: number, m: number): boolean {
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
}

/**
 * Inspect every tensor of a model, resident or streamed: a decoder layer at a time (acquired and released), the
 * embedding and LM head in row blocks, so a model larger than the WebAssembly memory is inspected too.
 */
export function inspectModel(store: ModelStore): InspectReport {
  const c = store.config;
  const tensors: TensorReport[] = [];
  const byKind: Record<string, number> = {};
  let total = 0;
  let linParams = 0;
  let linZeros = 0;
  const compression = { operators: 0, denseBytes: 0, bytes: 0, saved: 0 };
  const hfConfig = store.source.hfConfig;
  const schemeOf = hfConfig && isQuantizedConfig(hfConfig) ? schemesFromConfig(hfConfig, `${store.source.path}/config.json`) : undefined;
  const quantization: Record<string, number> = {};
  const record = (spec: HFTensorSpec, count: TensorCount, params: number, t?: LinearWeight) => {
    const isLinear = (LINEAR_OPS as readonly string[]).includes(spec.key) || spec.key === "lmHead";
    const compressed = t && (t.format === "2:4" || t.format === "csr") ? t : undefined;
    const s = isLinear && !(spec.key === "lmHead" && store.config.tiedEmbeddings) ? schemeOf?.(spec.name.replace(/\.weight$/, "")) : undefined;
    const quantized = s ? { scheme: schemeLabel(s), format: s.format, activations: s.activationBits === 8 ? ("int8" as const) : null } : undefined;
    if (quantized) quantization[quantLabel(quantized)] = (quantization[quantLabel(quantized)] ?? 0) + 1;
    tensors.push({
      name: spec.name, shape: spec.shape, params, zeros: count.zeros, zeroFraction: count.zeros / params,
      nm: (LINEAR_OPS as readonly string[]).includes(spec.key) ? count.nm() : null,
      ...(compressed ? { format: compressed.format, sparseBytes: compressed.bytes } : {}),
      ...(quantized ? { quantized } : {}),
    });
    if (compressed) {
      compression.operators++;
      compression.denseBytes += params * 4;
      compression.bytes += compressed.bytes;
    }
    byKind[KIND[spec.key]!] = (byKind[KIND[spec.key]!] ?? 0) + params;
    total += params;
    if (isLinear && spec.key !== "lmHead") {
      linParams += params;
      linZeros += count.zeros;
    }
  };
  const specs = hfTensorSpecs(c);
  const rowBlocks = (spec: HFTensorSpec, rows: number, read: (r0: number, r1: number) => { data: Float32Array; w?: LinearWeight }) => {
    const count = new TensorCount();
    const step = Math.max(1, Math.min(rows, store.headBlockRows));
    let w: LinearWeight | undefined;
    for (let r0 = 0; r0 < rows; r0 += step) {
      const r1 = Math.min(rows, r0 + step);
      const b = read(r0, r1);
      w = b.w;
      count.add(b.data, r1 - r0, c.dim, false);
    }
    record(spec, count, rows * c.dim, w);
  };
  for (const spec of specs) {
    if (spec.layer !== undefined) continue;
    if (spec.key === "embed") {
      const ids = (r0: number, r1: number) => Array.from({ length: r1 - r0 }, (_, i) => r0 + i);
      rowBlocks(spec, c.vocabSize, (r0, r1) => {
        const data = new Float32Array((r1 - r0) * c.dim);
        store.embedRows(ids(r0, r1), data);
        return { data };
      });
    }
  }
  for (let l = 0; l < c.nLayers; l++) {
    const lw = store.acquire(l);
    try {
      for (const spec of specs.filter((s) => s.layer === l)) {
        const t = (lw as unknown as Record<string, Tensor | LinearWeight>)[spec.key]!;
        const d = denseWeight(store.wasm, t); // a compressed operator's is rebuilt for this tensor only
        const count = new TensorCount();
        const [rows, cols] = spec.shape.length === 2 ? spec.shape : [1, d.length];
        count.add(d, rows!, cols!, (LINEAR_OPS as readonly string[]).includes(spec.key));
        record(spec, count, d.length, "format" in t ? t : undefined);
      }
    } finally {
      store.release(l);
    }
  }
  for (const spec of specs) {
    if (spec.layer !== undefined) continue;
    if (spec.key === "norm") {
      const count = new TensorCount();
      count.add(store.norm.data, 1, c.dim, false);
      record(spec, count, c.dim);
    } else if (spec.key === "lmHead") {
      rowBlocks(spec, c.vocabSize, (r0, r1) => {
        const w = store.headRows(r0, r1);
        return { data: denseWeight(store.wasm, w), w };
      });
    }
  }
  // report in the table's order (embedding first, then the layers, then norm and LM head)
  const order = new Map(specs.map((s, i) => [s.name, i]));
  tensors.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  return {
    path: store.source.path,
    format: store.source.format,
    dtype: store.source.dtype,
    config: c,
    residency: store.resident ? "resident" : "streamed",
    params: { total, byKind },
    linear: { params: linParams, zeros: linZeros, sparsity: linParams ? linZeros / linParams : 0 },
    tensors,
    ...(compression.operators ? { compression: { ...compression, saved: compression.denseBytes - compression.bytes } } : {}),
    ...(Object.keys(quantization).length ? { quantization } : {}),
  };
}
