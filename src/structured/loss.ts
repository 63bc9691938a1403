/**
 * @file The language-model loss on calibration sequences with a per-layer forward hook (src/model/forward.ts
 * `Capture`, which may rewrite the inputs of o_proj and down_proj in place), and the gates that scale the
 * output of every structure: a_j → (1 + θ_j)·a_j for an MLP channel, the G·hd attention outputs of a k/v
 * group likewise. θ = 0 is the unchanged model; θ_s = −1 removes structure s exactly.
 */
import { createRunState, embed, head, layerForward, type Capture, type RunState } from "../model/forward.js";
import type { Model } from "../model/types.js";
import { logitsNll } from "../eval/perplexity.js";
import { groupQCols, layerCounts } from "./structures.js";

/** Mean negative log-likelihood per predicted token over `seqs` (each predicts tokens 1..), float64 sums. */
export function hookedLoss(model: Model, st: RunState, seqs: readonly number[][], hook?: (l: number) => Capture | undefined): number {
  const V = model.config.vocabSize;
  let nll = 0;
  let count = 0;
  for (const seq of seqs) {
    const T = seq.length;
    if (T < 2) continue;
    embed(model, st, seq);
    for (let l = 0; l < model.config.nLayers; l++) layerForward(model, st, model.weights.layers[l], l, T, 0, hook?.(l));
    head(model, st, T, T);
    nll += logitsNll(model.wasm.arena.f32(st.logits, T * V), V, seq);
    count += T - 1;
  }
  return count > 0 ? nll / count : 0;
}

/** A run state for sequences up to `maxLen` tokens (allocated in the arena: call inside `arena.scoped`). */
export function lossState(model: Model, seqs: readonly number[][]): RunState {
  const maxLen = Math.max(2, ...seqs.map((s) => s.length));
  return createRunState(model, maxLen, maxLen);
}

/**
 * Layout of the gate vector θ over the whole model: for each layer, its channels then its k/v groups.
 * `offset[l]` is the index of layer l's first channel gate.
 */
export interface GateLayout {
  offset: number[];
  channels: number[];
  groups: number[];
  size: number;
}

export function gateLayout(model: Model): GateLayout {
  const offset: number[] = [];
  const channels: number[] = [];
  const groups: number[] = [];
  let n = 0;
  for (const lw of model.weights.layers) {
    const k = layerCounts(model.config, lw);
    offset.push(n);
    channels.push(k.channels);
    groups.push(k.groups);
    n += k.channels + k.groups;
  }
  return { offset, channels, groups, size: n };
}

/** Index in θ of channel j / group g of layer l. */
export function gateIndex(layout: GateLayout, l: number, kind: "channel" | "group", i: number): number {
  return layout.offset[l] + (kind === "channel" ? i : layout.channels[l] + i);
}

/** The forward hook of layer l that multiplies each structure's output by (1 + θ_s). Skips layers with θ = 0. */
export function gateHook(model: Model, layout: GateLayout, theta: Float64Array | Float32Array): (l: number) => Capture | undefined {
  const c = model.config;
  const a = model.wasm.arena;
  return (l) => {
    const off = layout.offset[l];
    const nc = layout.channels[l];
    const ng = layout.groups[l];
    let any = false;
    for (let i = 0; i < nc + ng; i++) if (theta[off + i] !== 0) any = true;
    if (!any) return undefined;
    const ch = new Float32Array(nc);
    for (let j = 0; j < nc; j++) ch[j] = 1 + theta[off + j];
    return (point, x, T, cols) => {
      if (point === "down") {
        const v = a.f32(x, T * cols);
        for (let t = 0; t < T; t++) {
          const r = t * cols;
          for (let j = 0; j < cols; j++) v[r + j] *= ch[j];
        }
      } else if (point === "o") {
        const v = a.f32(x, T * cols);
        for (let g = 0; g < ng; g++) {
          const s = 1 + theta[off + nc + g];
          if (s === 1) continue;
          const [c0, c1] = groupQCols(c, g);
          for (let t = 0; t < T; t++) for (let j = t * cols + c0; j < t * cols + c1; j++) v[j] *= s;
        }
      }
    };
  };
}
