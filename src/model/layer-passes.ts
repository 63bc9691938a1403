/**
 * @file Decoder-layer passes of calibration samples (the pruning driver's captures and stream advances) as
 * executor tasks (src/exec/executor.ts): each slot runs its block of passes on its own RunState, inline or on a
 * worker, with the same code. Layers cross threads as descriptions (./describe.ts).
 */
import type { Executor } from "../exec/executor.js";
import type { Wasm } from "../wasm/runtime.js";
import type { LayerWeights, ModelConfig } from "./types.js";
import { CAPTURE_ORDER, layerForward, type CapturePoint, type RunState } from "./forward.js";
import { describe, revive, type Described } from "./describe.js";
import type { Rows } from "../io/row-store.js";

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
    // a pass that only captures stops after its last capture point (the rest of the layer is not needed)
    const stopAfter = p.out === undefined && caps ? [...CAPTURE_ORDER].reverse().find((q) => caps[q] !== undefined) : undefined;
    layerForward(model, st, lws[p.lw], l, p.T, 0, caps ? (point, x, T, cols) => {
      const dst = caps[point];
      if (dst !== undefined) copy(x, dst, T * cols);
    } : undefined, stopAfter);
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

/** Consecutive sequences whose rows × `floatsPerRow` fit `budgetFloats` (at least one each). */
export function rowChunks(lengths: readonly number[], floatsPerRow: number, budgetFloats: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const budget = Math.max(1, Math.floor(budgetFloats / floatsPerRow));
  let i0 = 0;
  while (i0 < lengths.length) {
    let i1 = i0 + 1;
    let rows = lengths[i0]!;
    while (i1 < lengths.length && rows + lengths[i1]! <= budget) rows += lengths[i1++]!;
    out.push([i0, i1]);
    i0 = i1;
  }
  return out;
}

/** Floats of one chunk of rows in the arena while a layer runs over a RowStore. */
const ADVANCE_CHUNK_FLOATS = 48 << 20;

/**
 * Pass every sequence of `rows` (hidden states, width = dim) through layer `lw` in place: chunks of sequences are
 * copied into the arena, run by `run` (the executor's slots: `executorPasses`), and written back. The result does
 * not depend on the chunking or the thread count (each sequence is one pass).
 */
export async function advanceRows(
  wasm: Wasm, config: ModelConfig, lw: LayerWeights, rows: Rows,
  run: (lws: LayerWeights[], passes: LayerPass[]) => Promise<void> | void,
): Promise<void> {
  const a = wasm.arena;
  for (const [i0, i1] of rowChunks(rows.lengths, 2 * config.dim, ADVANCE_CHUNK_FLOATS)) {
    const m = a.mark();
    const base = rows.offsets[i0]!;
    const block = a.alloc((rows.offsets[i1 - 1]! + rows.lengths[i1 - 1]! - base) * config.dim);
    const at = (i: number) => block + 4 * (rows.offsets[i]! - base) * config.dim;
    for (let i = i0; i < i1; i++) rows.read(i, a.f32(at(i), rows.size(i)));
    const passes: LayerPass[] = [];
    for (let i = i0; i < i1; i++) passes.push({ lw: 0, at: at(i), T: rows.lengths[i]!, out: at(i) });
    await run([lw], passes);
    for (let i = i0; i < i1; i++) rows.write(i, a.f32(at(i), rows.size(i)));
    a.release(m);
  }
}

/** `advanceRows`' runner on the executor's slots (one RunState per slot). */
export function executorPasses(exec: Executor, config: ModelConfig, l: number, states: readonly RunState[], what: string) {
  return (lws: LayerWeights[], passes: LayerPass[]) => runLayerPasses(exec, config, l, states, lws, passes, what);
}
