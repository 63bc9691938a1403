/**
 * @file Text generation with a KV cache, as llama2.c's `generate`: the prompt (with BOS) is prefilled in one
 * batched forward, then one token per step. As in run.c, `steps` counts forward positions (BOS included, at
 * most the model's context): position p yields token p+1, so the sequence ends at steps+1 tokens, or earlier
 * when the model emits BOS. Bytes are streamed through a UTF-8 decoder.
 */
import { UsageError } from "../errors.js";
import { createRunState, forward } from "../model/forward.js";
import type { LinearWeight, Model } from "../model/types.js";
import { Sampler } from "./sampler.js";

export interface GenerateOptions {
  prompt: string;
  steps: number;
  temperature: number;
  topP: number;
  seed: number;
  /** called with each piece of text as soon as it is complete UTF-8 */
  onText?: (text: string) => void;
  /** the one-position GEMV split over threads (src/generate/gemv.ts `gemvHelper`; same tokens) */
  gemv?: (w: LinearWeight, x: number, y: number) => boolean;
}

export interface GenerateResult {
  text: string;
  tokens: number[];
  promptTokens: number;
  generatedTokens: number;
  seconds: number;
  tokensPerSecond: number;
}

export function generate(model: Model, opts: GenerateOptions): GenerateResult {
  const tok = model.tokenizer;
  if (!tok) throw new UsageError("generate needs a tokenizer (none was found for this model; pass --tokenizer)");
  const { steps, temperature, topP } = opts;
  if (!(Number.isInteger(steps) && steps >= 1)) throw new UsageError(`--steps must be a positive integer, got ${steps}`);
  if (!(temperature >= 0)) throw new UsageError(`--temperature must be ≥ 0, got ${temperature}`);
  if (!(topP >= 0 && topP <= 1)) throw new UsageError(`--top-p must be in [0, 1], got ${topP}`);
  const maxSteps = Math.min(steps, model.config.maxSeqLen);
  const prompt = tok.encode(opts.prompt, { bos: true });
  const sampler = new Sampler(model.config.vocabSize, temperature, topP, opts.seed);
  const decoder = new TextDecoder("utf-8");
  let text = "";
  const emit = (prev: number, id: number) => {
    const s = decoder.decode(tok.decodeBytes(prev, id), { stream: true });
    if (s) {
      text += s;
      opts.onText?.(s);
    }
  };
  return model.wasm.arena.scoped(() => {
    // prefill: positions 0..P-1 of the prompt (at most maxSteps of them)
    const prefill = prompt.slice(0, Math.min(prompt.length, maxSteps));
    const st = createRunState(model, prefill.length, maxSteps);
    if (opts.gemv) st.gemv = opts.gemv;
    const tokens = [...prompt.slice(0, maxSteps + 1)];
    const t0 = performance.now();
    // the prompt's own tokens are printed, as run.c does
    for (let i = 1; i < tokens.length; i++) emit(tokens[i - 1], tokens[i]);
    let logits = forward(model, st, prefill, 0);
    let tFirst = performance.now();
    let generated = 0;
    while (tokens.length < maxSteps + 1) {
      const next = sampler.sample(logits);
      if (next === tok.bosId) break;
      emit(tokens[tokens.length - 1], next);
      tokens.push(next);
      generated++;
      if (generated === 1) tFirst = performance.now();
      if (tokens.length >= maxSteps + 1) break;
      logits = forward(model, st, [next], tokens.length - 1);
    }
    const tail = decoder.decode();
    if (tail) {
      text += tail;
      opts.onText?.(tail);
    }
    const t1 = performance.now();
    const seconds = (t1 - t0) / 1000;
    // llama2.c reports speed excluding the first step (which includes prefill)
    const steady = (t1 - tFirst) / 1000;
    const tokensPerSecond = generated > 1 ? (generated - 1) / steady : generated / seconds;
    return { text, tokens, promptTokens: prompt.length, generatedTokens: generated, seconds, tokensPerSecond };
  });
}
