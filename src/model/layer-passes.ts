/**
 * @file Decoder-layer passes of calibration samples (the pruning driver's captures and stream advances) as
 * executor tasks (src/exec/executor.ts): each slot runs its block of passes on its own RunState, inline or on a
 * worker, with the same code. Layers cross threads as descriptions (./describe.ts).
 */
import type { Executor } from "../exec/executor.js";
import type { Wasm } from "../wasm/runtime.js";
import type { LayerWeights, ModelConfig } from "./types.js";
import { layerForward, type CapturePoint, type RunState } from "./forward.js";
import { describe, revive, type Described } from "./describe.js";

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

/** Run the passes in order on `st`. */
export function layerPassesOn(wasm: Wasm, config: ModelConfig, l: number, st: RunState, lws: LayerWeights[], passes: LayerPass[]): void {
  const a = wasm.arena;
  const model = { config, wasm };
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

export const LAYER_PASS_HANDLERS = {
  layer(wasm: Wasm, t: LayerPassesTask): number {
    layerPassesOn(wasm, t.config, t.l, t.st, t.lws.map((lw) => revive<LayerWeights>(wasm, lw)), t.passes);
    return 0;
  },
} as const;

/**
 * Run layer passes of samples in contiguous blocks (balanced by tokens) over the executor's slots, slot s on
 * `states[s]` (one RunState per slot, allocated by the caller on the main thread).
 */
export async function runLayerPasses(
  exec: Executor, config: ModelConfig, l: number, states: readonly RunState[], lws: LayerWeights[], passes: LayerPass[], what: string,
): Promise<void> {
  const tokens = passes.reduce((s, p) => s + p.T, 0);
  const blocks = exec.split(passes.length, tokens * config.dim * config.dim, 1, (i) => passes[i].T);
  const described = lws.map((lw) => describe(lw));
  await exec.each(blocks, ([i0, i1], s) => ({ op: "layer", config, l, st: states[s]!, lws: described, passes: passes.slice(i0, i1) }) satisfies LayerPassesTask, what);
}
