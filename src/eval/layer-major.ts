/**
 * @file Layer-major evaluation (SparseGPT's `llama_eval`): every sequence through decoder layer l, then l+1, so a
 * model that does not fit the WebAssembly memory is evaluated with one layer in it at a time (a streamed
 * ModelStore, src/model/residency.ts). The hidden states of all sequences live outside the arena (a RowStore,
 * spilled to a file beyond a budget); each sequence runs through a layer as one pass (its own KV cache, positions
 * 0..T−1), exactly as the resident forward runs it, and the logits come from the LM head in row blocks (the
 * final norm, then X·W_blockᵀ per block of vocabulary rows, assembled per sequence) with the same NLL as
 * `perplexity` (./perplexity.ts). On a model that fits both paths give the same numbers, bit for bit (tested).
 */
import type { Executor } from "../exec/executor.js";
import { RowStore } from "../io/row-store.js";
import { gemmNT } from "../kernels/products.js";
import { createRunState } from "../model/forward.js";
import { kernels } from "../kernels/index.js";
import { advanceRows, executorPasses } from "../model/layer-passes.js";
import { denseWeight } from "../model/linear.js";
import type { ModelStore } from "../model/residency.js";
import { logitsNll, perplexity, type PerplexityResult } from "./perplexity.js";

export interface LayerMajorOptions {
  /** host-memory bytes for the hidden states before they spill to a file (default: all in memory) */
  budget?: number;
  onLayer?(l: number, nLayers: number): void;
}

export async function perplexityLayerMajor(
  store: ModelStore, sequences: number[][], exec: Executor, countFrom?: readonly number[], opts: LayerMajorOptions = {},
): Promise<PerplexityResult> {
  const c = store.config;
  const a = store.wasm.arena;
  const k = kernels(store.wasm);
  const t0 = performance.now();
  const m0 = a.mark();
  const hidden = new RowStore(sequences.map((s) => s.length), c.dim, { budget: opts.budget });
  try {
    const maxLen = Math.max(2, ...sequences.map((s) => s.length));
    const states = Array.from({ length: exec.slots }, () => createRunState(store, maxLen, maxLen, { kvLayers: 1, logits: false }));
    const tmp = new Float32Array(maxLen * c.dim);
    sequences.forEach((s, i) => {
      store.embedRows(s, tmp);
      hidden.write(i, tmp);
    });
    for (let l = 0; l < c.nLayers; l++) {
      const lw = store.acquire(l);
      try {
        await advanceRows(store.wasm, c, lw, hidden, executorPasses(exec, c, l, states, `eval: layer ${l}`));
      } finally {
        store.release(l);
      }
      opts.onLayer?.(l, c.nLayers);
    }
    // the head, sequence by sequence: final norm, logits by blocks of LM-head rows, NLL
    const x = a.alloc(maxLen * c.dim);
    const xn = a.alloc(maxLen * c.dim);
    const block = Math.min(store.headBlockRows, c.vocabSize);
    const y = a.alloc(maxLen * block);
    const logits = new Float32Array(maxLen * c.vocabSize);
    // a compressed LM head (a resident model's) is read once as dense rows; a dense one in blocks of rows
    const whole = store.headBlockRows >= c.vocabSize ? store.headRows(0, c.vocabSize) : undefined;
    const denseHead = whole && whole.format !== "dense" ? a.put(denseWeight(store.wasm, whole)) : undefined;
    let nll = 0;
    let count = 0;
    for (let i = 0; i < sequences.length; i++) {
      const seq = sequences[i]!;
      const from = countFrom?.[i] ?? 1;
      const T = seq.length;
      if (T <= from) continue;
      hidden.read(i, a.f32(x, T * c.dim));
      k.f32_rmsnorm(x, store.norm.ptr, xn, T, c.dim, c.normEps);
      for (let r0 = 0; r0 < c.vocabSize; r0 += block) {
        const r1 = Math.min(c.vocabSize, r0 + block);
        const N = r1 - r0;
        const w = denseHead !== undefined ? { ptr: denseHead + 4 * r0 * c.dim } : store.headRows(r0, r1);
        if (!("ptr" in w)) throw new RangeError("a compressed LM head is served whole");
        await gemmNT(exec, xn, w.ptr, y, T, N, c.dim, "eval: LM head");
        const yv = a.f32(y, T * N);
        for (let t = 0; t < T; t++) logits.set(yv.subarray(t * N, (t + 1) * N), t * c.vocabSize + r0);
      }
      nll += logitsNll(logits.subarray(0, T * c.vocabSize), c.vocabSize, seq, from);
      count += T - from;
    }
    const seconds = (performance.now() - t0) / 1000;
    const meanNll = count > 0 ? nll / count : NaN;
    const tokens = sequences.reduce((s, q) => s + q.length, 0);
    return { perplexity: Math.exp(meanNll), meanNll, tokens: count, sequences: sequences.length, seconds, tokensPerSecond: tokens / seconds };
  } finally {
    hidden.close();
    a.release(m0);
  }
}

/**
 * Perplexity of a store's model: token-major on a resident model (sequences in parallel over the slots), layer-major
 * on a streamed one; progress is sequences done (resident) or layers done (streamed).
 */
export async function storePerplexity(
  store: ModelStore, sequences: number[][], exec: Executor, countFrom?: readonly number[],
  onProgress?: (done: number, total: number) => void,
): Promise<PerplexityResult> {
  if (store.model) return perplexity(store.model, sequences, exec, onProgress, countFrom);
  return perplexityLayerMajor(store, sequences, exec, countFrom, { onLayer: (l, n) => onProgress?.(l + 1, n) });
}
