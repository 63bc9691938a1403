/**
 * @file Perplexity: average negative log-likelihood over every predicted token of every sequence
 * (sequence t predicts token t+1; the BOS is never predicted). Logits are float32 from the kernels; the
 * log-sum-exp per position is taken in float64 on the host. An optional per-sequence `countFrom` (index of the
 * first token whose prediction counts, default 1; src/eval/protocol.ts) leaves a window's leading tokens as
 * context only.
 */
import type { Model, ModelConfig } from "../model/types.js";
import type { Wasm } from "../wasm/runtime.js";
import type { Executor } from "../exec/executor.js";
import { createRunState, forward, type RunState } from "../model/forward.js";
import { describe, revive, type Described } from "../model/describe.js";

export interface PerplexityResult {
  perplexity: number;
  meanNll: number;
  tokens: number;
  sequences: number;
  seconds: number;
  tokensPerSecond: number;
}

/**
 * Σ_t −log softmax(logits[t])[seq[t+1]] over rows countFrom−1 .. seq.length−2 of `logits` ([T, V] row-major):
 * the log-sum-exp of each row in float64, max-subtracted. The one NLL of eval, training's eval and structured scores.
 */
export function logitsNll(logits: Float32Array, V: number, seq: ArrayLike<number>, countFrom = 1): number {
  let nll = 0;
  for (let t = countFrom - 1; t + 1 < seq.length; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (row[i] > max) max = row[i];
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
    nll += max + Math.log(sum) - row[seq[t + 1]];
  }
  return nll;
}

/** Sum of -log p(token[t] | token[..t-1]) over t ≥ countFrom of one sequence, and the count of predicted tokens. */
export function sequenceNll(model: Model, st: RunState, seq: number[], countFrom = 1): { nll: number; count: number } {
  if (seq.length <= countFrom) return { nll: 0, count: 0 };
  const logits = forward(model, st, seq, 0, true);
  return { nll: logitsNll(logits, model.config.vocabSize, seq, countFrom), count: seq.length - countFrom };
}

/** Per-sequence NLLs of sequences on one slot's RunState (an executor task; the model crosses as a description). */
export interface NllTask {
  op: "nll";
  model: { config: ModelConfig; weights: Described<Model["weights"]> };
  st: RunState;
  seqs: number[][];
  /** per sequence: first token whose prediction counts (default 1) */
  countFrom?: number[];
}

export const NLL_HANDLERS = {
  /** Per-sequence [nll, count] (flat: 2 numbers per sequence). */
  nll(wasm: Wasm, t: NllTask): Float64Array {
    const model = { config: t.model.config, weights: revive<Model["weights"]>(wasm, t.model.weights), wasm } as Model;
    const out = new Float64Array(2 * t.seqs.length);
    t.seqs.forEach((s, i) => {
      const r = sequenceNll(model, t.st, s, t.countFrom?.[i]);
      out[2 * i] = r.nll;
      out[2 * i + 1] = r.count;
    });
    return out;
  },
} as const;

/**
 * Perplexity of `model` on `sequences` over the executor's slots: sequences go out in small chunks to whichever
 * slot is free (each slot has its own RunState), and the per-sequence NLLs are summed in sequence order, so the
 * result is bit-identical for any thread count. Progress counts finished sequences over all slots.
 */
export async function perplexity(
  model: Model,
  sequences: number[][],
  exec: Executor,
  onProgress?: (done: number, total: number, tokens: number) => void,
  countFrom?: readonly number[],
): Promise<PerplexityResult> {
  const maxLen = Math.max(2, ...sequences.map((s) => s.length));
  const arena = model.wasm.arena;
  const m = arena.mark();
  try {
    const states = Array.from({ length: exec.slots }, () => createRunState(model, maxLen, maxLen));
    if (exec.slots > 1 && model.weights.embed.ptr < 0) throw new RangeError("perplexity: a model whose embedding is held off the arena (hostEmbedding) cannot be sent to worker threads");
    const desc = { config: model.config, weights: describe(model.weights) };
    const t0 = performance.now();
    const per = new Float64Array(2 * sequences.length);
    const chunk = Math.max(1, Math.min(16, Math.ceil(sequences.length / (4 * exec.slots))));
    let next = 0;
    let done = 0;
    let counted = 0;
    await Promise.all(states.map(async (st, slot) => {
      while (next < sequences.length) {
        const i0 = next;
        const i1 = Math.min(sequences.length, i0 + chunk);
        next = i1;
        const task: NllTask = { op: "nll", model: desc, st, seqs: sequences.slice(i0, i1), countFrom: countFrom?.slice(i0, i1) };
        const r = await exec.run<Float64Array>(task, `eval: sequences ${i0}..${i1 - 1}`, slot);
        per.set(r, 2 * i0);
        done += i1 - i0;
        for (let i = i0; i < i1; i++) counted += r[2 * (i - i0) + 1];
        onProgress?.(done, sequences.length, counted);
      }
    }));
    let nll = 0;
    let count = 0;
    for (let i = 0; i < sequences.length; i++) {
      nll += per[2 * i];
      count += per[2 * i + 1];
    }
    const seconds = (performance.now() - t0) / 1000;
    const meanNll = count > 0 ? nll / count : NaN;
    const tokens = sequences.reduce((a, s) => a + s.length, 0);
    return { perplexity: Math.exp(meanNll), meanNll, tokens: count, sequences: sequences.length, seconds, tokensPerSecond: tokens / seconds };
  } finally {
    arena.release(m);
  }
}
