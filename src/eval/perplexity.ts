/**
 * @file Perplexity: average negative log-likelihood over every predicted token of every sequence
 * (sequence t predicts token t+1; the BOS is never predicted). Logits are float32 from the kernels; the
 * log-sum-exp per position is taken in float64 on the host. An optional per-sequence `countFrom` (index of the
 * first token whose prediction counts, default 1; src/eval/protocol.ts) leaves a window's leading tokens as
 * context only.
 */
import type { Model } from "../model/types.js";
import { createRunState, forward, type RunState } from "../model/forward.js";

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

export function perplexity(
  model: Model,
  sequences: number[][],
  onProgress?: (done: number, total: number, tokens: number) => void,
  countFrom?: readonly number[],
): PerplexityResult {
  const maxLen = Math.max(2, ...sequences.map((s) => s.length));
  const arena = model.wasm.arena;
  return arena.scoped(() => {
    const st = createRunState(model, maxLen, maxLen);
    const t0 = performance.now();
    let nll = 0;
    let count = 0;
    sequences.forEach((seq, i) => {
      const r = sequenceNll(model, st, seq, countFrom?.[i]);
      nll += r.nll;
      count += r.count;
      onProgress?.(i + 1, sequences.length, count);
    });
    const seconds = (performance.now() - t0) / 1000;
    const meanNll = count > 0 ? nll / count : NaN;
    const tokens = sequences.reduce((a, s) => a + s.length, 0);
    return { perplexity: Math.exp(meanNll), meanNll, tokens: count, sequences: sequences.length, seconds, tokensPerSecond: tokens / seconds };
  });
}

/**
 * `perplexity` on `model.wasm.parallel`'s threads when there is a pool: sequences go out in small chunks to
 * whichever slot is free (each slot has its own RunState), and the per-sequence NLLs are summed in sequence
 * order, so the result is bit-identical to `perplexity` for any thread count. Progress counts finished
 * sequences over all workers.
 */
export async function perplexityAsync(
  model: Model,
  sequences: number[][],
  onProgress?: (done: number, total: number, tokens: number) => void,
  countFrom?: readonly number[],
): Promise<PerplexityResult> {
  const p = model.wasm.parallel;
  if (!p) return perplexity(model, sequences, onProgress, countFrom);
  const { describe } = await import("../parallel/forward-local.js");
  const maxLen = Math.max(2, ...sequences.map((s) => s.length));
  const arena = model.wasm.arena;
  const m = arena.mark();
  try {
    const states = Array.from({ length: p.threads }, () => createRunState(model, maxLen, maxLen));
    const desc = { config: model.config, weights: describe(model.weights) };
    const t0 = performance.now();
    const per = new Float64Array(2 * sequences.length);
    const chunk = Math.max(1, Math.min(16, Math.ceil(sequences.length / (4 * p.threads))));
    let next = 0;
    let done = 0;
    let counted = 0;
    await Promise.all(states.map(async (st) => {
      while (next < sequences.length) {
        const i0 = next;
        const i1 = Math.min(sequences.length, i0 + chunk);
        next = i1;
        const r = await p.run<Float64Array>("forward", { op: "nll", model: desc, st, seqs: sequences.slice(i0, i1), countFrom: countFrom?.slice(i0, i1) }, `eval: sequences ${i0}..${i1 - 1}`);
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
