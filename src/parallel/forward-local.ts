/**
 * @file Forward-pass work on one thread's RunState, shared by the worker tasks (./forward.worker.ts) and the
 * single-thread path, so both run the same code: decoder-layer passes of calibration samples (the pruning
 * driver) and per-sequence NLLs (perplexity). Models and layers cross threads as *descriptions*: tensors
 * without their `data` views (pointers and shapes only), revived here on this thread's memory.
 */
import type { Wasm } from "../wasm/runtime.js";
import type { LayerWeights, Model, ModelConfig, Tensor } from "../model/types.js";
import { layerForward, type CapturePoint, type RunState } from "../model/forward.js";
import { sequenceNll } from "../eval/perplexity.js";

/** A structure of tensors with their data views removed (structured-clone friendly, no weight copies). */
export type Described<T> = T extends Tensor ? Omit<Tensor, "data"> : T extends object ? { [K in keyof T]: Described<T[K]> } : T;

function isTensor(v: unknown): v is Tensor {
  return !!v && typeof v === "object" && "ptr" in v && "shape" in v && "data" in v;
}

/** Strip the `data` views of every tensor in `v` (arrays and plain objects are walked). */
export function describe<T>(v: T): Described<T> {
  if (isTensor(v)) {
    const { data: _data, ...rest } = v;
    return rest as Described<T>;
  }
  if (Array.isArray(v)) return v.map(describe) as Described<T>;
  if (v && typeof v === "object" && !ArrayBuffer.isView(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, describe(x)])) as Described<T>;
  }
  return v as Described<T>;
}

/** Give every described tensor in `v` its data view on `wasm`'s memory again. */
export function revive<T>(wasm: Wasm, v: Described<T>): T {
  const d = v as unknown;
  if (d && typeof d === "object" && "ptr" in d && "shape" in d && Array.isArray((d as Tensor).shape)) {
    const t = d as Omit<Tensor, "data">;
    return { ...t, data: wasm.arena.f32(t.ptr, t.shape.reduce((a, b) => a * b, 1)) } as T;
  }
  if (Array.isArray(d)) return d.map((x) => revive(wasm, x)) as T;
  if (d && typeof d === "object" && !ArrayBuffer.isView(d)) {
    return Object.fromEntries(Object.entries(d).map(([k, x]) => [k, revive(wasm, x as Described<unknown>)])) as T;
  }
  return d as T;
}

/** One decoder-layer pass of one sample: stream rows at `at` (T, dim) through layer `lws[lw]`. */
export interface LayerPass {
  lw: number;
  at: number;
  T: number;
  /** where to copy the input X (T, cols) of the operators at a capture point */
  caps?: Partial<Record<CapturePoint, number>>;
  /** where to write the layer's output stream (T, dim), e.g. `at` itself to advance in place */
  out?: number;
}

export interface LayerPassesTask {
  op: "layer";
  config: ModelConfig;
  l: number;
  st: RunState;
  lws: Described<LayerWeights>[];
  passes: LayerPass[];
}

export interface NllTask {
  op: "nll";
  model: { config: ModelConfig; weights: Described<Model["weights"]> };
  st: RunState;
  seqs: number[][];
  /** per sequence: first token whose prediction counts (default 1) */
  countFrom?: number[];
}

/** Run the passes in order on `st`; `lws` already revived. */
export function layerPasses(wasm: Wasm, config: ModelConfig, l: number, st: RunState, lws: LayerWeights[], passes: LayerPass[]): void {
  const a = wasm.arena;
  const model = { config, wasm } as Model; // layerForward reads only config and wasm
  const copy = (src: number, dst: number, n: number) => a.f32(dst, n).set(a.f32(src, n));
  for (const p of passes) {
    copy(p.at, st.x, p.T * config.dim);
    const caps = p.caps;
    layerForward(model, st, lws[p.lw], l, p.T, 0, caps ? (point, x, T, cols) => {
      const dst = caps[point];
      if (dst !== undefined) copy(x, dst, T * cols);
    } : undefined);
    if (p.out !== undefined) copy(st.x, p.out, p.T * config.dim);
  }
}

/** Per-sequence [nll, count] of `seqs` on `st` (flat: 2 numbers per sequence). */
export function sequenceNlls(wasm: Wasm, model: Model, st: RunState, seqs: number[][], countFrom?: readonly number[]): Float64Array {
  const out = new Float64Array(2 * seqs.length);
  seqs.forEach((s, i) => {
    const r = sequenceNll(model, st, s, countFrom?.[i]);
    out[2 * i] = r.nll;
    out[2 * i + 1] = r.count;
  });
  return out;
}
