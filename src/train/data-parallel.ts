/**
 * @file Data-parallel training: the gradient of one step over a fixed grid of sequence blocks, computed on the
 * worker pool (or on the main thread without one) with the same bytes for any thread count.
 *
 * The step's S = batch·accum sequences are cut into G = min(gradBlocks, S) contiguous *blocks* (a grid that
 * depends on the settings only, never on --threads). Each block's gradient starts from zero and takes its
 * sequences in order (the kernels add in a fixed order, see assembly/gemm.ts, f32_gemm_nn/tn); the step's
 * gradient is block 0 + block 1 + … + block G−1, added in block order on the main thread. The executor gives
 * each slot a contiguous run of blocks, its own training activations (TrainState, teacher's too) and one
 * gradient buffer per block, all allocated by the main thread in the arena; a task carries pointers, the tokens
 * of its sequences and the description of the student (tensors without data views). With one slot the one task
 * runs inline: the same sums in the same order, so `--threads 1`, 2, 3 write the same model.
 */
import type { Wasm } from "../wasm/runtime.js";
import type { Model, ModelConfig } from "../model/types.js";
import { describe, revive, type Described } from "../model/describe.js";
import { trainBackward, trainForward, type TrainState } from "./backprop.js";
import type { Student } from "./student.js";
import { kernels } from "../kernels/index.js";

/** The block grid of a step: G contiguous [s0, s1) ranges of the step's S sequences. */
export function blockGrid(S: number, gradBlocks: number): Array<[number, number]> {
  const G = Math.max(1, Math.min(gradBlocks, S));
  return Array.from({ length: G }, (_, b) => [Math.floor((b * S) / G), Math.floor(((b + 1) * S) / G)] as [number, number]);
}

/** Contiguous runs of blocks per slot: at most `slots` runs over `G` blocks. */
export function slotRuns(G: number, slots: number): Array<[number, number]> {
  const P = Math.max(1, Math.min(slots, G));
  return Array.from({ length: P }, (_, p) => [Math.floor((p * G) / P), Math.floor(((p + 1) * G) / P)] as [number, number]);
}

/** The parts of a Student the training forward/backward read, without host-only data (masks, data views). */
export interface StudentDesc {
  config: ModelConfig;
  weights: Described<Model["weights"]>;
  byLayer: Described<Student["byLayer"]>;
  embedOffset: number;
  normOffset: number;
  lmHeadOffset: number;
  layerNormOffsets: Student["layerNormOffsets"];
}

export function describeStudent(st: Student): StudentDesc {
  return {
    config: st.model.config,
    weights: describe(st.model.weights),
    byLayer: describe(st.byLayer.map((rec) => Object.fromEntries(Object.entries(rec).map(([op, lp]) => [op, { ...lp, mask: undefined }])) as Student["byLayer"][number])),
    embedOffset: st.embedOffset,
    normOffset: st.normOffset,
    lmHeadOffset: st.lmHeadOffset,
    layerNormOffsets: st.layerNormOffsets,
  };
}

export function reviveStudent(wasm: Wasm, d: StudentDesc): Student {
  const model = { config: d.config, weights: revive<Model["weights"]>(wasm, d.weights), wasm } as Model;
  return {
    model, linears: [], params: [], gradFloats: 0,
    byLayer: revive<Student["byLayer"]>(wasm, d.byLayer),
    embedOffset: d.embedOffset, normOffset: d.normOffset, lmHeadOffset: d.lmHeadOffset, layerNormOffsets: d.layerNormOffsets,
  };
}

export interface LossSettings {
  T: number;
  alpha: number;
  temperature: number;
}

/**
 * Gradients of the summed loss of `seqs` (each T+1 tokens) *added* into `grads`, in sequence order; per
 * sequence [ce, kl] into `out` from `at` (summed by the host in sequence order).
 */
export function sequenceGrads(
  student: Student, ts: TrainState, teacher: { st: Student; ts: TrainState } | undefined, seqs: Int32Array[],
  L: LossSettings, grads: number, out: Float64Array, at: number,
): void {
  const m = student.model;
  const k = kernels(m.wasm);
  const a = m.wasm.arena;
  const { T, alpha } = L;
  const V = m.config.vocabSize;
  seqs.forEach((seq, i) => {
    const input = seq.subarray(0, T);
    trainForward(student, ts, input);
    a.i32(ts.targets, T).set(seq.subarray(1, T + 1));
    out[2 * (at + i)] = k.f32_cross_entropy_backward(ts.logits, ts.targets, ts.dlogits, T, V, alpha, 0);
    if (alpha < 1 && teacher) {
      trainForward(teacher.st, teacher.ts, input);
      out[2 * (at + i) + 1] = k.f32_kl_backward(ts.logits, teacher.ts.logits, ts.dlogits, T, V, L.temperature, 1 - alpha, 1);
    }
    trainBackward(student, ts, T, grads);
  });
}

/** One slot's run of blocks: each block's gradient from zero into its own buffer. */
export interface TrainBlocksTask {
  op: "trainBlocks";
  student: StudentDesc;
  teacher?: StudentDesc;
  ts: TrainState;
  tts?: TrainState;
  loss: LossSettings;
  gradFloats: number;
  blocks: Array<{ grad: number; seqs: Int32Array[] }>;
}

export const TRAIN_HANDLERS = {
  /** Per sequence [ce, kl] of the task's blocks, in order. */
  trainBlocks: (wasm: Wasm, t: TrainBlocksTask): Float64Array => trainBlocks(wasm, t),
} as const;

function trainBlocks(wasm: Wasm, t: TrainBlocksTask): Float64Array {
  const student = reviveStudent(wasm, t.student);
  const teacher = t.teacher && t.tts ? { st: reviveStudent(wasm, t.teacher), ts: t.tts } : undefined;
  const n = t.blocks.reduce((a, b) => a + b.seqs.length, 0);
  const out = new Float64Array(2 * n);
  let at = 0;
  for (const b of t.blocks) {
    wasm.arena.f32(b.grad, t.gradFloats).fill(0);
    sequenceGrads(student, t.ts, teacher, b.seqs, t.loss, b.grad, out, at);
    at += b.seqs.length;
  }
  return out;
}
